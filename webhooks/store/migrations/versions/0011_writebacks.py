"""Write-backs (a mapping's `writeback:`): what the bridge tells the CRM of each callback,
stored with the outcome that causes it (an outbox) and sent by the delivery processes.

writebacks: one row per notice: the event, its source and entry, the moment (scheduled,
failed, expired, called) with its facts frozen as they were, and its own status, attempts,
lease and the CRM's last answer.
holds.token_key widens to 96: a hold's key is a token's, or `lookup:<source>` and
`writeback:<source>` (a source's name has up to 64 characters).

Revision ID: 0011_writebacks
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_writebacks"
down_revision = "0010_call_results"
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "writebacks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, sa.ForeignKey("events.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("moment", sa.String(16), nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("holder", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("http_status", sa.Integer),
        sa.Column("answer", sa.Text),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("reason_params", sa.Text),
    )
    op.create_index("ix_writebacks_due", "writebacks", ["status", "next_attempt_at", "id"])
    op.create_index("ix_writebacks_event", "writebacks", ["event_id"])
    with op.batch_alter_table("holds") as batch:
        batch.alter_column("token_key", type_=sa.String(96), existing_type=sa.String(32),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.alter_column("token_key", type_=sa.String(32), existing_type=sa.String(96),
                           existing_nullable=False)
    op.drop_index("ix_writebacks_event", "writebacks")
    op.drop_index("ix_writebacks_due", "writebacks")
    op.drop_table("writebacks")
