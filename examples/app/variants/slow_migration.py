"""a good migration that takes a while (copy into migrations/versions/; set down_revision to the head)

It holds its transaction for SLOW_SECONDS, long enough for a test to cancel the deploy meanwhile.

Revision ID: 0098
Revises: 0003
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0098"
down_revision = "0003"
branch_labels = None
depends_on = None

SLOW_SECONDS = 6


def upgrade() -> None:
    op.add_column("items", sa.Column("slow", sa.Integer, nullable=True))
    time.sleep(SLOW_SECONDS)


def downgrade() -> None:
    op.drop_column("items", "slow")
