"""endpoint health

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 04:40:49.899314
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stalled_claims", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "disabled_reason", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("failing_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("circuit_open_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.drop_column("circuit_open_until")
        batch_op.drop_column("consecutive_failures")
        batch_op.drop_column("failing_since")
        batch_op.drop_column("disabled_reason")

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("stalled_claims")
