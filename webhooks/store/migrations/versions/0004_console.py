"""Operator console: the phone a recall dials (searchable), indexes for the events page's
filters and keyset paging, the hourly chart, and the audit log of operator actions.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("phone", sa.String(32)))
    op.create_index("ix_events_phone", "events", ["phone"])
    op.create_index("ix_events_customer", "events", ["customer_id"])
    op.create_index("ix_events_status_id", "events", ["status", "id"])
    op.create_index("ix_events_source_id", "events", ["source", "id"])
    op.create_index("ix_events_created", "events", ["created_at"])
    op.create_index("ix_attempts_at", "attempts", ["at"])
    op.create_table(
        "audit",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("event_id", ID),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])


def downgrade() -> None:
    op.drop_table("audit")
    for name, table in (("ix_attempts_at", "attempts"), ("ix_events_created", "events"),
                        ("ix_events_source_id", "events"), ("ix_events_status_id", "events"),
                        ("ix_events_customer", "events"), ("ix_events_phone", "events")):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("events") as batch:
        batch.drop_column("phone")
