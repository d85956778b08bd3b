"""channel providers: the provider each delivery went through, and the rate limits' buckets

``deliveries.provider`` names the channel that sent an attempt (a failover group's member);
``rate_buckets`` holds one token bucket per rate-limited channel, updated under a row lock so
every worker of the store shares the limit.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=128), nullable=True))
    op.create_table(
        "rate_buckets",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("provider")
