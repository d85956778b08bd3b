"""archived outbox rows: when a finished row's payload and attempts went to the archive

A pruned outbox row stays as the record of its idempotency key (so the touch is never queued
again), with its payload emptied and its deliveries deleted; ``archived_at`` says when.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("archived_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
