"""Initial schema: events, attempts, slots, quota, holds.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token_key", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.String(64)),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("raw", sa.JSON, nullable=False),
        sa.Column("recall", sa.JSON),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("holder", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("source", "dedup_key", name="uq_events_source_dedup"),
    )
    op.create_index("ix_events_due", "events", ["status", "next_attempt_at"])
    op.create_index("ix_events_lead", "events",
                    ["token_key", "campaign_id", "customer_id", "status"])
    op.create_table(
        "attempts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, sa.ForeignKey("events.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("http_status", sa.Integer),
        sa.Column("wolkvox_code", sa.Integer),
        sa.Column("wolkvox_msg", sa.Text),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_attempts_event", "attempts", ["event_id"])
    op.create_table(
        "slots",
        sa.Column("token_key", sa.String(32), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("holder", sa.String(64)),
        sa.Column("lease_until", sa.Float, nullable=False),
    )
    op.create_table(
        "quota",
        sa.Column("token_key", sa.String(32), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("used", sa.Integer, nullable=False),
    )
    op.create_table(
        "holds",
        sa.Column("token_key", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("until", sa.Float, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("holds", "quota", "slots", "attempts", "events"):
        op.drop_table(table)
