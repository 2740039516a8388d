"""The migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import gateway.store.models  # noqa: F401  (the tables, on SQLModel.metadata)
from alembic import command
from gateway import migrate
from gateway.settings import Settings
from tests.support.dns import ScriptedDNS
from tests.support.gateway import PG_MISSING, Gateway


def _differences(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), SQLModel.metadata))
    finally:
        engine.dispose()


def test_migrations_at_head_match_the_models(tmp_path: Path) -> None:
    database = tmp_path / "schema.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{database}")
    migrate.upgrade(settings)
    assert _differences(f"sqlite:///{database}") == []
    # Down to the first revision and up again: every step can be undone.
    command.downgrade(migrate.alembic_config(settings), "0001")
    migrate.upgrade(settings)
    assert _differences(f"sqlite:///{database}") == []


# On PostgreSQL event, delivery and attempt are partitioned (`store/partitions.py`):
# their unique keys that do not hold the partition key are plain indexes there (the
# publish path takes the key's advisory lock instead), and no foreign key refers to
# event or delivery (migration 0017). Nothing else differs.
_PARTITIONED = {"event", "delivery", "attempt"}
_PARTITIONED_ONLY = {
    ("remove_index", ("content_key",)),
    ("remove_index", ("idempotency_key",)),
    ("add_constraint", ("content_key",)),
    ("add_constraint", ("idempotency_key",)),
    ("add_fk", ("event_id",)),
    ("add_fk", ("delivery_id",)),
}


def _partitioned_differences(url: str) -> set[tuple[str, tuple[str, ...]]]:
    """The differences of the partitioned tables (not of their partitions); without the
    foreign keys PostgreSQL adds to each partition of a referenced table by itself."""

    def compare(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, kind, _: kind != "table" or name in _PARTITIONED,
                "include_object": lambda thing, name, kind, *_: (
                    (name if kind == "table" else thing.table.name) in _PARTITIONED
                ),
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, SQLModel.metadata))

    async def run() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    found = set()
    for diff in asyncio.run(run()):
        kind, thing = diff[0], diff[1]
        if kind == "remove_fk" and re.search(r"_fkey\d*$", thing.name):
            continue
        found.add((kind, tuple(c.name for c in getattr(thing, "columns", ())) or (str(diff),)))
    return found


@pytest.mark.skipif(PG_MISSING is not None, reason=PG_MISSING or "")
def test_postgres_partitioned_schema_matches_the_models_and_can_be_undone(
    tmp_path: Path, dns: ScriptedDNS
) -> None:
    gateway = Gateway("postgres", tmp_path, dns)
    try:
        settings = Settings(database_url=gateway.database_url)
        migrate.upgrade(settings)
        assert _partitioned_differences(gateway.database_url) == _PARTITIONED_ONLY
        command.downgrade(migrate.alembic_config(settings), "0012")
        assert _partitioned_differences(gateway.database_url) == set()
        migrate.upgrade(settings)
        assert _partitioned_differences(gateway.database_url) == _PARTITIONED_ONLY
        # Every timestamp is stored with its time zone, as the models declare (the
        # comparison above does not tell the two kinds apart).
        assert (
            gateway.sql(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type = 'timestamp without time zone'"
            )
            == []
        )
    finally:
        gateway.stop()
