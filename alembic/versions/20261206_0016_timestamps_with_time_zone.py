"""the timestamps of console sessions, portal revocations and source refusals with
their time zone on PostgreSQL, as the models declare them and every other table has

They were created as `timestamp without time zone` holding UTC. The gateway reads
them right either way, but SQL comparing them with `now()` would be off by the
server's time zone; converting reads each stored value as UTC. SQLite stores text:
nothing changes there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 19:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("console_session", "created_at"),
    ("console_session", "expires_at"),
    ("portal_revocation", "revoked_before"),
    ("source_refusal", "received_at"),
)


def upgrade() -> None:
    _retype("timestamp with time zone")


def downgrade() -> None:
    _retype("timestamp without time zone")


def _retype(sql_type: str) -> None:
    """Each column as `sql_type`, its values read as UTC (both ways)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {sql_type} "
            f"USING {column} AT TIME ZONE 'UTC'"
        )
