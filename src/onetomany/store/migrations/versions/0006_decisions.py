"""decisions: what each tick decided about a touch for a recipient, and why

``explain`` shows a tick's decisions after the fact (a handled event's touch that re-entry
blocked, a contact outside the segment), once per key and outcome, pruned after a retention.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("touch", sa.String(128), nullable=False),
        sa.Column("contact_id", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(512), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.UniqueConstraint("idempotency_key", "outcome", name="uq_decisions_key_outcome"),
    )
    op.create_index("ix_decisions_recipient", "decisions", ["touch", "contact_id", "id"])
    op.create_index("ix_decisions_at", "decisions", ["at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_at", table_name="decisions")
    op.drop_index("ix_decisions_recipient", table_name="decisions")
    op.drop_table("decisions")
