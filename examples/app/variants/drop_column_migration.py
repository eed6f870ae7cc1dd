"""drop items.description with its data (copy into migrations/versions/; set down_revision to the head)

The downgrade cannot bring the data back, and says so: only a backup taken before the upgrade can.

Revision ID: 0097
Revises: 0003
"""

from alembic import op

revision = "0097"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("items", "description")


def downgrade() -> None:
    raise RuntimeError("items.description was dropped with its data: only a backup brings it back")
