"""add items.price (a good migration for a next release; copy into migrations/versions/)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("price", sa.Numeric(10, 2), nullable=True))


def downgrade() -> None:
    op.drop_column("items", "price")
