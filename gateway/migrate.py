"""Run the Alembic migrations from code (`gateway migrate`, embedded start-up, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from gateway.db import create_engine
from gateway.settings import Settings

_PACKAGE = Path(__file__).resolve().parent


def _script_location() -> Path:
    # A wheel carries the migrations inside the package; a source checkout has them at the top.
    for candidate in (_PACKAGE / "_migrations", _PACKAGE.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("the Alembic migrations were not found beside the gateway package")


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    config.attributes["database_url"] = settings.database_url
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema to `revision`. Must not be called from inside a running event loop."""
    command.upgrade(alembic_config(settings), revision)


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


async def current_revision(settings: Settings) -> str | None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
            )
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Schema:
    """The schema this code needs: its head revision and every revision it knows."""

    head: str | None
    known: frozenset[str]

    def problem(self, current: str | None) -> str | None:
        """What is wrong with a database at `current`, naming the fix; None when it can
        serve. A revision this code does not know is newer (a later release migrated
        it, during a rolling upgrade): that is left to the newer code's judgement."""
        if current == self.head or (current is not None and current not in self.known):
            return None
        if current is None:
            return "the database has no schema yet; run: gateway migrate"
        return (
            f"the database schema is at {current}, behind this version's {self.head}; "
            "run: gateway migrate"
        )


def schema(settings: Settings) -> Schema:
    scripts = ScriptDirectory.from_config(alembic_config(settings))
    return Schema(
        scripts.get_current_head(), frozenset(r.revision for r in scripts.walk_revisions())
    )


async def schema_problem(settings: Settings) -> str | None:
    """Whether this database can be served by this code (see `Schema.problem`)."""
    return schema(settings).problem(await current_revision(settings))
