"""The claim query's index orders by id within a due time too: with thousands of events due at
the same moment (a bulk load, a backlog after an outage), PostgreSQL otherwise reads and sorts
every one of them on each claim (100 ms at 100,000) instead of reading ten.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.drop_index("ix_events_due", table_name="events")
    op.create_index("ix_events_due", "events", ["status", "next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_due", table_name="events")
    op.create_index("ix_events_due", "events", ["status", "next_attempt_at"])
