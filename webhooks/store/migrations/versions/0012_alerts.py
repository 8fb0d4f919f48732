"""Operators' alerts (ALERT_WEBHOOK_URL): each condition's state, and its messages as
write-backs of no event.

alerts: one row per condition (a held token or credentials, the spool in use, failures past
the threshold): whether it stands, since when, and whether its raising was said (at most once
per 15 minutes per condition; its clearing is said when its raising was).
writebacks.event_id becomes nullable: an alert's message is stored, sent, retried and held
as a write-back, with no event.

Revision ID: 0012_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_alerts"
down_revision = "0011_writebacks"
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("said", sa.Boolean, nullable=False),
        sa.Column("said_at", sa.Float),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
    )
    with op.batch_alter_table("writebacks") as batch:
        batch.alter_column("event_id", existing_type=ID, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM writebacks WHERE event_id IS NULL")
    with op.batch_alter_table("writebacks") as batch:
        batch.alter_column("event_id", existing_type=ID, nullable=False)
    op.drop_table("alerts")
