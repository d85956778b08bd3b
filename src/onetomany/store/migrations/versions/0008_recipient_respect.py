"""recipient respect: the suppression list and each contact's topic subscriptions

``suppressions`` keeps the addresses and numbers never to be contacted again (hard bounce,
complaint, manual, legal), keyed by the normalised address. ``subscriptions`` keeps each
contact's current answer per topic and channel; every change is also an event. Outbox rows a
send policy stops end with the status ``skipped`` (the column is free text: no change).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("contact_id", sa.String(255), primary_key=True),
        sa.Column("topic", sa.String(128), primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("subscribed", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("subscriptions")
    op.drop_table("suppressions")
