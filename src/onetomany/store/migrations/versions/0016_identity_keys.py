"""identity keys: which contact an email or a source's own id names, across sources

Two sources that know one person (HubSpot by email, Stripe by customer id) must store one
contact: each key a source declares is claimed once, for one contact, by the first source
to give it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_keys",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("contact_id", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_identity_keys_contact_id", "identity_keys", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_identity_keys_contact_id", table_name="identity_keys")
    op.drop_table("identity_keys")
