"""portal links revoked per tenant: portal_revocation

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_revocation",
        sa.Column("tenant_id", sa.String(length=255), nullable=False),
        sa.Column("revoked_before", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_portal_revocation")),
    )


def downgrade() -> None:
    op.drop_table("portal_revocation")
