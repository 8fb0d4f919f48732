"""Order by the CRM's own clock: when the change an event reports happened (a mapping's
`occurred_at`), so a late redelivery of an older change never replaces a newer callback.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("occurred_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("occurred_at")
