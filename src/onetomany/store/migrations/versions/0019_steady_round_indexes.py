"""steady round indexes: engagement and cadence rounds read what changed

An engagement trigger's round after the first reads only the watched rows whose send time
crossed its threshold since the last round (deliveries by time), and the sent
rows of contacts saved since (the outbox by touch and contact, which an explanation's
``touch_rows`` reads too); and a cadence touch's due rows by touch and time.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_at", "deliveries", ["at"])
    op.create_index("ix_outbox_touch_contact", "outbox", ["touch", "contact_id"])
    op.create_index("ix_schedules_touch_due", "schedules", ["touch", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_touch_due", table_name="schedules")
    op.drop_index("ix_outbox_touch_contact", table_name="outbox")
    op.drop_index("ix_deliveries_at", table_name="deliveries")
