"""Contact caps: when each delivered recall was set to ring, so a lead's calls per day and per
week can be counted in the store (across processes and machines).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("scheduled_for", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("scheduled_for")
