"""tier states: each account's service tier and the move it may be heading for

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tier_states",
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("tier", sa.String(length=8), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("candidate", sa.String(length=8), nullable=True),
        sa.Column("candidate_since", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("tier_states")
