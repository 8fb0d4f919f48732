"""The rate gate: one row per CRM destination, holding the next moment a call to it may
start, so that a mapping's `rate:` holds across threads, processes and machines.

Revision ID: 0008_rate_gate
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_rate_gate"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "rates",
        sa.Column("key", sa.String(96), primary_key=True),
        sa.Column("next_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rates")
