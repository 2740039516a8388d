"""stream endpoints: an endpoint's kind, `http` (POSTed to its url) or `stream` (read
by a client of `GET /v1/endpoints/{id}/stream`, such as `gateway listen`)

The url column stays NOT NULL: a stream endpoint stores "" there, so that every
reader of an endpoint keeps a string, and nothing about the column changes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="http")
        )


def downgrade() -> None:
    # An older version would POST their deliveries to "": disabled instead, kept.
    op.execute(
        "UPDATE endpoint SET disabled = true, disabled_reason = 'a stream endpoint' "
        "WHERE kind = 'stream'"
    )
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.drop_column("kind")
