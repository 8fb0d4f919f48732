"""The store's identity: a random id written once, so that a request spooled while the store
was down is replayed only into the store that acknowledged it (spool.py), never into another
bridge's store that shares the spool folder.

Revision ID: 0007
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    table = op.create_table(
        "store_identity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("store_id", sa.String(32), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "store_id": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("store_identity")
