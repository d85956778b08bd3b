"""program state: segment membership, journey stages and their history, cadence schedules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_members",
        sa.Column("segment", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=255), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("segment", "contact_id"),
    )
    op.create_table(
        "journey_states",
        sa.Column("journey", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("stage", sa.String(length=128), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("entered_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("overdue_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("journey", "account_id"),
    )
    op.create_table(
        "journey_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("journey", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("stage", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_journey_history_account", "journey_history", ["journey", "account_id", "id"]
    )
    op.create_table(
        "schedules",
        sa.Column("touch", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.String(length=255), nullable=False),
        sa.Column("anchor_id", sa.String(length=64), nullable=False),
        sa.Column("anchor_at", sa.DateTime(), nullable=False),
        sa.Column("next_at", sa.DateTime(), nullable=True),
        sa.Column("fired", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("touch", "contact_id"),
    )
    op.create_index("ix_schedules_due", "schedules", ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
    op.drop_index("ix_journey_history_account", table_name="journey_history")
    op.drop_table("journey_history")
    op.drop_table("journey_states")
    op.drop_table("segment_members")
