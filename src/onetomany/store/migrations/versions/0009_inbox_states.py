"""inbox states: topic, seen, archived and snoozed in-app messages

The web inbox (``onetomany.web``) lists a contact's messages by tab and topic, counts the
unseen ones for the bell, archives, and snoozes a message until a time, when it comes back
unread.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("topic", "seen_at", "archived_at", "snoozed_until")


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topic", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("seen_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("snoozed_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
