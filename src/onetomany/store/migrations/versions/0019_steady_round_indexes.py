"""steady round indexes: engagement and cadence rounds read what changed

An engagement trigger's round after the first reads only the watched rows whose send time
crossed its threshold since the last round (deliveries by status and time), and the sent
rows of contacts saved since (the outbox by touch and contact, which an explanation's
``touch_rows`` reads too).

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
    op.create_index("ix_deliveries_sent_at", "deliveries", ["status", "at"])
    op.create_index("ix_outbox_touch_contact", "outbox", ["touch", "contact_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_touch_contact", table_name="outbox")
    op.drop_index("ix_deliveries_sent_at", table_name="deliveries")
