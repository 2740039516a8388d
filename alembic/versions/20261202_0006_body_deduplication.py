"""body deduplication: source.deduplicate_body, event.content_key

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deduplicate_body", sa.Boolean(), nullable=True))
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_key", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_event_content_key"), ["content_key"])


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_event_content_key"), type_="unique")
        batch_op.drop_column("content_key")
    with op.batch_alter_table("source", schema=None) as batch_op:
        batch_op.drop_column("deduplicate_body")
