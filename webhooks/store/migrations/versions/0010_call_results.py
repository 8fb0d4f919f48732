"""Call results (wolkvox's campaign_3 report): what became of each delivered recall's call,
and each campaign's report turn.

events: `delivered_at` (when wolkvox accepted the recall: a report row before it is not this
recall's call), `result_state` (awaiting | reported | missing | replaced; NULL: not asked
about), `call_result` (wolkvox's word, as given), `called_at`, `called_phone` (the report
row's telephone, when it differs from the recall's).
reports: one row per token and campaign: when its report may be asked for next, and how the
last one went.

Revision ID: 0010_call_results
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_call_results"
down_revision = "0009_reason_codes"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("delivered_at", sa.Float))
        batch.add_column(sa.Column("result_state", sa.String(16)))
        batch.add_column(sa.Column("call_result", sa.String(32)))
        batch.add_column(sa.Column("called_at", sa.Float))
        batch.add_column(sa.Column("called_phone", sa.String(32)))
    op.create_index("ix_events_awaiting", "events",
                    ["result_state", "token_key", "campaign_id", "scheduled_for"])
    op.create_index("ix_events_called", "events", ["called_at"])
    op.create_table(
        "reports",
        sa.Column("token_key", sa.String(32), primary_key=True),
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("last_at", sa.Float),
        sa.Column("outcome", sa.String(16)),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("reason_params", sa.Text),
        sa.Column("rows", sa.Integer),
    )


def downgrade() -> None:
    op.drop_table("reports")
    op.drop_index("ix_events_called", "events")
    op.drop_index("ix_events_awaiting", "events")
    with op.batch_alter_table("events") as batch:
        for column in ("called_phone", "called_at", "call_result", "result_state",
                       "delivered_at"):
            batch.drop_column(column)
