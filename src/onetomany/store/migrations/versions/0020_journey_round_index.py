"""journey round index: a steady journey round finds the stages that became overdue

A journey round after the first reads only the accounts whose data changed since the last
one, and those whose open stage reached its ``ideal_days`` in between: a range of
``entered_at`` per journey and stage.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_journey_states_entered", "journey_states", ["journey", "stage", "entered_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_journey_states_entered", table_name="journey_states")
