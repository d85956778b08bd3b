"""claim token: every claim of an outbox row carries a token that fences its outcome write

A dispatcher whose lease ran out may still be sending; another worker may have claimed the
row meanwhile. Each claim now writes a fresh token, and an outcome or a lease renewal only
changes a row that still carries the writer's token, so a stale worker changes nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claim_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claim_token")
