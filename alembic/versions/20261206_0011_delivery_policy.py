"""delivery policy per endpoint: signature scheme, retry policy, authentication,
contact email and the warning state; previous_data on events

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("retry_policy", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("auth", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("contact_email", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("failed_deliveries_in_row", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("warned_percent", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("warning_emailed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_data", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_column("previous_data")
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.drop_column("warning_emailed_at")
        batch_op.drop_column("warned_percent")
        batch_op.drop_column("failed_deliveries_in_row")
        batch_op.drop_column("contact_email")
        batch_op.drop_column("auth")
        batch_op.drop_column("retry_policy")
        batch_op.drop_column("signature")
