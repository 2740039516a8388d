"""The migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import gateway.store.models  # noqa: F401  (the tables, on SQLModel.metadata)
from alembic import command
from gateway import migrate
from gateway.settings import Settings


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
