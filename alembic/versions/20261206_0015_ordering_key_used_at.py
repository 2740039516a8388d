"""ordering keys: when each was last taken, so that retention can forget the keys
that no event uses any more

Existing keys count as taken at the upgrade: the first purge a retention period
later forgets those whose events are all gone by then.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 19:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ordering_key", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "used_at",
                sqlmodel.sql.sqltypes.UTCDateTime(),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("ordering_key", schema=None) as batch_op:
        batch_op.drop_column("used_at")
