"""holdouts: each recipient a touch's control group kept out, once per idempotency key

The goal's rate in treatment (the outbox's sent rows) is compared with its rate here: the
time a held-out recipient would have been sent the touch starts its goal window.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holdouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=512), nullable=False),
        sa.Column("program", sa.String(length=128), nullable=False),
        sa.Column("touch", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key", name="uq_holdouts_key"),
    )
    op.create_index("ix_holdouts_touch", "holdouts", ["touch", "at"])


def downgrade() -> None:
    op.drop_index("ix_holdouts_touch", table_name="holdouts")
    op.drop_table("holdouts")
