"""Reasons in the operator's language: beside each stored reason's English text, its code and
parameters (reasons.py), so a page renders it in its own language. Rows written before keep
NULL in both and are shown by their text.

Revision ID: 0009_reason_codes
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_reason_codes"
down_revision = "0008_rate_gate"

TABLES = ("events", "attempts", "holds")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("reason_code", sa.String(64)))
            batch.add_column(sa.Column("reason_params", sa.Text))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("reason_params")
            batch.drop_column("reason_code")
