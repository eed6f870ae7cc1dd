"""a migration that fails on purpose (copy into migrations/versions/; set down_revision to the head)

It first changes the schema, then raises: PostgreSQL rolls the whole `alembic upgrade` run back,
so `alembic current` still shows the revision from before the upgrade.

Revision ID: 0099
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    raise RuntimeError("migration 0099 fails on purpose (sandbox failing-migration variant)")


def downgrade() -> None:
    op.drop_table("half_done")
