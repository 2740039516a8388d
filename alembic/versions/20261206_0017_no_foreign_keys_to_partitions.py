"""on PostgreSQL, no foreign key from delivery to event or from attempt to delivery

Both referred to a partitioned table. PostgreSQL checks such a key for every row
inserted, through the partitioned table, at about 50 microseconds a row here (8 for
the key to the plain endpoint table): a publish to 10 endpoints paid 0.6 ms, and the
record of its 10 attempts 0.5 ms, of server time that nothing else in the
transaction came near. The gateway keeps what the keys kept: deliveries are inserted
only with their event, in the same transaction; an attempt only for a delivery that
still exists (`ledger.record`); and whatever deletes deliveries deletes their
attempts first (`retention`, `endpoints.delete_endpoint`). SQLite keeps both keys,
which cost it nothing worth removing.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 23:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, constraint, column, referred table)
_KEYS = (
    ("delivery", "fk_delivery_event_id_event", "event_id", "event"),
    ("attempt", "fk_attempt_delivery_id_delivery", "delivery_id", "delivery"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name, _column, _referred in _KEYS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Rows the gateway left without their event or delivery (none, unless one was
    # deleted by hand) would fail the check: they go first.
    for table, _name, column, referred in _KEYS:
        op.execute(
            f"DELETE FROM {table} t WHERE NOT EXISTS "
            f"(SELECT 1 FROM {referred} r WHERE r.id = t.{column})"
        )
    for table, name, column, referred in reversed(_KEYS):
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            f"REFERENCES {referred} (id) ON DELETE CASCADE"
        )
