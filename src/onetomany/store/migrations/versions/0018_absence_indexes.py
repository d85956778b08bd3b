"""absence indexes: a steady tick reads what changed, not every absent account

An absence trigger's round after the first reads only the subjects whose latest event
crossed its threshold since the last round (events by time), or whose profile was
saved since (accounts and contacts by ``updated_at``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_time", "events", ["occurred_at"])
    op.create_index("ix_accounts_updated_at", "accounts", ["updated_at"])
    op.create_index("ix_contacts_updated_at", "contacts", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_contacts_updated_at", table_name="contacts")
    op.drop_index("ix_accounts_updated_at", table_name="accounts")
    op.drop_index("ix_events_time", table_name="events")
