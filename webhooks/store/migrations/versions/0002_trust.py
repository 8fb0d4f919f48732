"""Trust: an operator's retry restarts the event's age; a quota hold remembers the limit it
was judged against; a probe row proves the database takes writes.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("requeued_at", sa.Float))
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("daily_limit", sa.Integer))
    op.create_table(
        "probe",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("probe")
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("daily_limit")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("requeued_at")
