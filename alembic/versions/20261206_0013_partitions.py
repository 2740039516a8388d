"""partitions: on PostgreSQL, event, delivery and attempt partitioned by day (see
`gateway/store/partitions.py`); SQLite keeps its tables

The data stays where it is: each table as it was becomes its partition of everything
before tomorrow (`<table>_before`), attached beside a DEFAULT partition and the
daily partitions of the days ahead. Nothing is copied, so the tables are locked for
as long as PostgreSQL takes to check the partition bounds and foreign keys and to
build the indexes whose definition changes (attempt's primary key gains
`started_at`; event's unique keys become plain indexes): about 10 s for a million
rows of each (docs/operations.md).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from gateway.store.partitions import AHEAD_DAYS, DAY, bound, create_day_sql, day_of
from gateway.timeutil import utcnow

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("event", "delivery", "attempt")  # referenced before referencing
_PARTITION_KEYS = {"event": "id", "delivery": "id", "attempt": "started_at"}
_PRIMARY_KEYS = {
    "event": "id",
    "delivery": "id",
    "attempt": "delivery_id, attempt, started_at",
}
_ORDERED = "WHERE ordering_key IS NOT NULL"
# Every index of the models, as of 0012; on PostgreSQL event's unique keys are plain
# indexes (a unique index of a partitioned table must hold its partition key): the
# publish path takes the key's advisory lock instead (`outbound/fanout.py`).
_INDEXES = {
    "event": [
        ("ix_event_type", "(type)"),
        ("ix_event_tenant_id", "(tenant_id)"),
        ("ix_event_source_id", "(source_id)"),
        ("ix_event_ordering_key_sequence", f"(ordering_key, sequence) {_ORDERED}"),
    ],
    "delivery": [
        ("ix_delivery_endpoint_id", "(endpoint_id)"),
        ("ix_delivery_event_id", "(event_id)"),
        ("ix_delivery_status_next_attempt_at", "(status, next_attempt_at)"),
        ("ix_delivery_status_event_type", "(status, event_type, event_id)"),
        (
            "ix_delivery_endpoint_id_ordering_key_sequence",
            f"(endpoint_id, ordering_key, sequence) {_ORDERED}",
        ),
    ],
    "attempt": [
        ("ix_attempt_started_at", "(started_at, status_code, duration_ms, retried, endpoint_id)"),
        ("ix_attempt_endpoint_id_started_at", "(endpoint_id, started_at)"),
    ],
}
_UNIQUE_KEYS = [
    ("uq_event_idempotency_key", "idempotency_key"),
    ("uq_event_content_key", "content_key"),
]
_FOREIGN_KEYS = [
    ("delivery", "fk_delivery_event_id_event", "event_id", "event"),
    ("delivery", "fk_delivery_endpoint_id_endpoint", "endpoint_id", "endpoint"),
    ("attempt", "fk_attempt_delivery_id_delivery", "delivery_id", "delivery"),
]
_STATISTICS = "CREATE STATISTICS {name} (mcv) ON status, event_type FROM {table}"


def _indexes_of(table: str) -> list[str]:
    return [
        row[0]
        for row in op.get_bind().exec_driver_sql(
            f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'"
        )
    ]


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    run = op.execute
    bind = op.get_bind()
    # The references between the three are made again, to the partitioned tables.
    run("ALTER TABLE attempt DROP CONSTRAINT fk_attempt_delivery_id_delivery")
    run("ALTER TABLE delivery DROP CONSTRAINT fk_delivery_event_id_event")
    for name, _column in _UNIQUE_KEYS:
        run(f"ALTER TABLE event DROP CONSTRAINT {name}")
    run("ALTER TABLE attempt DROP CONSTRAINT pk_attempt")
    run("ALTER STATISTICS st_delivery_status_event_type RENAME TO st_delivery_before_status")
    # Each table as it was becomes `<table>_before`, its names freed for the parent.
    for table in _TABLES:
        run(f"ALTER TABLE {table} RENAME TO {table}_before")
        for index in _indexes_of(f"{table}_before"):
            run(f"ALTER INDEX {index} RENAME TO {index}_before")

    tomorrow = day_of(utcnow()) + DAY
    kept: set[str] = set()
    for table in _TABLES:
        key = _PARTITION_KEYS[table]
        run(
            f"CREATE TABLE {table} (LIKE {table}_before INCLUDING DEFAULTS) "
            f"PARTITION BY RANGE ({key})"
        )
        run(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({_PRIMARY_KEYS[table]})")
        for index, columns in _INDEXES[table]:
            run(f"CREATE INDEX {index} ON {table} {columns}")
        for child, name, column, parent in _FOREIGN_KEYS:
            if child == table:
                run(
                    f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                    f"REFERENCES {parent} (id) ON DELETE CASCADE"
                )
        if table == "event":
            for name, column in _UNIQUE_KEYS:
                run(f"CREATE INDEX {name.replace('uq_', 'ix_', 1)} ON event ({column})")
        if table == "delivery":
            run(_STATISTICS.format(name="st_delivery_status_event_type", table="delivery"))
        if bind.exec_driver_sql(f"SELECT 1 FROM {table}_before LIMIT 1").scalar():
            # Checks the bound and the foreign keys, and builds the indexes that differ;
            # the others (same definition) are taken over as they are.
            run(
                f"ALTER TABLE {table} ATTACH PARTITION {table}_before "
                f"FOR VALUES FROM (MINVALUE) TO ({bound(table, tomorrow)})"
            )
            kept.add(table)
        else:
            run(f"DROP TABLE {table}_before")
        run(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        first = tomorrow if table in kept else tomorrow - DAY
        for n in range((tomorrow - first) // DAY + AHEAD_DAYS):
            for statement in create_day_sql(table, first + n * DAY):
                run(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    run = op.execute
    # Copied back into plain tables: a downgrade is not expected to be quick.
    for table in _TABLES:
        run(f"CREATE TABLE {table}_plain (LIKE {table} INCLUDING DEFAULTS)")
        run(f"INSERT INTO {table}_plain SELECT * FROM {table}")
    for table in reversed(_TABLES):
        run(f"DROP TABLE {table}")  # with its partitions and their statistics
    for table in _TABLES:
        run(f"ALTER TABLE {table}_plain RENAME TO {table}")
        key = "delivery_id, attempt" if table == "attempt" else _PRIMARY_KEYS[table]
        run(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})")
        for index, columns in _INDEXES[table]:
            run(f"CREATE INDEX {index} ON {table} {columns}")
    for name, column in _UNIQUE_KEYS:
        run(f"ALTER TABLE event ADD CONSTRAINT {name} UNIQUE ({column})")
    for child, name, column, parent in _FOREIGN_KEYS:
        run(
            f"ALTER TABLE {child} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            f"REFERENCES {parent} (id) ON DELETE CASCADE"
        )
    run(_STATISTICS.format(name="st_delivery_status_event_type", table="delivery"))
