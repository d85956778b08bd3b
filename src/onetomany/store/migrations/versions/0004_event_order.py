"""event order: the writing transaction of each event, so concurrent writers lose no event

On PostgreSQL a transaction that took a lower ``seq`` can commit after one with a higher
``seq``; reading the log by ``seq`` alone would step past it. Each event now records its
transaction id, and the log is read in (transaction id, seq) order up to the oldest
transaction still running (see ``Store.events_after``). Rows stored before this revision get
0: they are all committed, and a cursor written before it is read as (0, seq).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("txid", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Set after the column exists, so the rows already stored keep 0.
        op.alter_column(
            "events",
            "txid",
            server_default=sa.text("(pg_current_xact_id()::text::bigint)"),
        )
    op.create_index("ix_events_txid_seq", "events", ["txid", "seq"])


def downgrade() -> None:
    op.drop_index("ix_events_txid_seq", table_name="events")
    op.drop_column("events", "txid")
