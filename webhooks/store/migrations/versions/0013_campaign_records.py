"""New leads (a mapping's `campaign_record:`): the customers the bridge has added to each
campaign (wolkvox's add_record), so that none is added twice, across processes.

Revision ID: 0013_campaign_records
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_campaign_records"
down_revision = "0012_alerts"


def upgrade() -> None:
    op.create_table(
        "campaign_records",
        sa.Column("token_key", sa.String(32), primary_key=True),
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(255), primary_key=True),
        sa.Column("added_at", sa.Float, nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite")),
    )


def downgrade() -> None:
    op.drop_table("campaign_records")
