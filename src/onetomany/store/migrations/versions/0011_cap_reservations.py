"""cap reservations: the slots frequency caps have handed out, one per cap and outbox row

The caps policy counts these in a rolling window and takes a slot in the same transaction
(under a per-recipient lock on PostgreSQL, the write lock on SQLite), so two workers never
spend one slot twice.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cap_reservations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cap", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cap", "outbox_id", name="uq_cap_reservations_cap_row"),
    )
    op.create_index("ix_cap_reservations_scope", "cap_reservations", ["cap", "scope", "at"])


def downgrade() -> None:
    op.drop_index("ix_cap_reservations_scope", table_name="cap_reservations")
    op.drop_table("cap_reservations")
