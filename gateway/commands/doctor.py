"""`gateway doctor`: can this configuration run? One line per check, and what to do."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from gateway.commands.common import EXIT_FAILED, JsonFlag, out, shown_url, sqlite_file
from gateway.commands.output import print_json
from gateway.commands.running import describe

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.settings import Settings

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MAX_SKEW = 2.0  # seconds between this machine's clock and the database's
TIMEOUT = 10.0  # seconds for each thing that is reached over the network
CHECKS = (
    "configuration",
    "secret key",
    "database",
    "migrations",
    "stored secrets",
    "redis",
    "clock",
)


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, or skip (an earlier check failed)
    detail: str
    fix: str | None = None


def doctor(as_json: JsonFlag = False) -> None:
    """Check configuration, database, migrations, Redis and clock; exit 1 if anything is wrong.

    Run it with the environment of the gateway's processes. It changes nothing.
    """
    import asyncio  # here, as in the checks: not needed for `gateway --help`

    checks = asyncio.run(diagnose())
    healthy = all(c.status in (OK, SKIP) for c in checks)
    if as_json:
        print_json({"ok": healthy, "checks": [asdict(c) for c in checks]})
    else:
        styles = {OK: "green", WARN: "yellow", FAIL: "red", SKIP: "dim"}
        width = max(len(c.name) for c in checks)
        for c in checks:
            line = f"[{styles[c.status]}]{c.status.upper():<4}[/] {c.name:<{width}}  "
            line += escape(c.detail) + (f" [bold]→[/bold] {escape(c.fix)}" if c.fix else "")
            out.print(line, soft_wrap=True)
    if not healthy:
        raise typer.Exit(EXIT_FAILED)


async def diagnose() -> list[Check]:
    from pydantic import ValidationError

    from gateway.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GATEWAY_{'.'.join(str(p) for p in e['loc']).upper() or 'configuration'}: {e['msg']}"
            for e in exc.errors()
        )
        return [
            Check("configuration", FAIL, problems, "correct these environment variables"),
            *(Check(name, SKIP, "needs a valid configuration") for name in CHECKS[1:]),
        ]
    mode = "embedded mode (no Redis)" if settings.embedded else "Redis mode"
    checks = [
        Check("configuration", OK, f"{mode}, database {shown_url(settings.database_url)}"),
        _secret_key(settings),
    ]
    database, skew = await _database(settings)
    checks.append(database)
    if database.status == OK:
        migrations = await _migrations(settings)
        checks.append(migrations)
        if migrations.status == OK:
            checks.append(await _stored_secrets(settings))
        else:
            checks.append(Check("stored secrets", SKIP, "needs the schema at head"))
    else:
        checks += [Check(name, SKIP, "needs the database") for name in CHECKS[3:5]]
    checks.append(await _redis(settings))
    checks.append(
        _clock(settings, skew) if skew is not None else Check("clock", SKIP, "needs the database")
    )
    return checks


def _secret_key(settings: Settings) -> Check:
    from gateway.crypto import KEY_FILE, SecretKeyError, parse_key

    name = "secret key"
    if settings.secret_key:
        old = len(settings.old_secret_keys)
        return Check(
            name,
            OK,
            "GATEWAY_SECRET_KEY is set"
            + (f", with {old} old key(s) still accepted (a rotation in progress)" if old else ""),
        )
    if not settings.is_sqlite:
        return Check(
            name,
            FAIL,
            "GATEWAY_SECRET_KEY is not set, and the database is shared",
            "generate a key with `gateway secret-key generate` and set "
            "GATEWAY_SECRET_KEY to it for every gateway process",
        )
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        return Check(
            name,
            OK,
            f"none yet: `gateway serve` generates one on first start and keeps it in {path}",
        )
    try:
        parse_key(path.read_text())
    except (SecretKeyError, OSError) as exc:
        return Check(
            name,
            FAIL,
            f"{path} cannot be used: {exc}",
            f"restore {path} from the backup of the database, or set "
            "GATEWAY_SECRET_KEY to the key the secrets were sealed with",
        )
    return Check(
        name, OK, f"generated on first start and kept in {path}; back it up with the database"
    )


async def _database(settings: Settings) -> tuple[Check, float | None]:
    """Can it be reached, and how far is its clock from ours (seconds, + when ahead)?"""
    import asyncio

    from sqlalchemy import func, select

    from gateway.timeutil import as_utc

    name, where = "database", shown_url(settings.database_url)
    path = sqlite_file(settings)
    if path is not None and not path.exists():
        return Check(
            name,
            FAIL,
            f"the SQLite file {path} does not exist",
            "run `gateway migrate` (`gateway serve` also creates it), or set "
            "GATEWAY_DATABASE_URL to the gateway's database",
        ), None
    fix = "start the database, or correct GATEWAY_DATABASE_URL"
    engine = _engine(settings)
    try:
        async with asyncio.timeout(TIMEOUT), engine.connect() as conn:
            before = time.time()
            server_now: datetime | None = await conn.scalar(select(func.now()))
            after = time.time()
    except TimeoutError:
        return Check(name, FAIL, f"{where} did not answer within {TIMEOUT:g} s", fix), None
    except Exception as exc:
        return Check(name, FAIL, f"cannot use {where}: {describe(exc)}", fix), None
    finally:
        await engine.dispose()
    skew = as_utc(server_now).timestamp() - (before + after) / 2 if server_now else None
    return Check(name, OK, f"{where} answers"), skew


async def _migrations(settings: Settings) -> Check:
    import asyncio

    from alembic.script import ScriptDirectory

    from gateway.migrate import alembic_config, current_revision, head_revision

    name = "migrations"
    try:
        head = head_revision(settings)
        async with asyncio.timeout(TIMEOUT):
            current = await current_revision(settings)
    except Exception as exc:
        return Check(
            name, FAIL, f"cannot read the schema version: {describe(exc)}", "run `gateway migrate`"
        )
    if current == head:
        return Check(name, OK, f"the schema is at the latest revision ({head})")
    if current is None:
        return Check(name, FAIL, "the database has no schema yet", "run `gateway migrate`")
    try:
        ScriptDirectory.from_config(alembic_config(settings)).get_revision(current)
    except Exception:
        return Check(
            name,
            FAIL,
            f"the database is at revision {current}, which this version "
            "of the gateway does not know: a newer one migrated it",
            "run the gateway version that migrated the database",
        )
    also = " (`gateway serve` also does it on start with SQLite)" if settings.is_sqlite else ""
    return Check(
        name,
        FAIL,
        f"the schema is at revision {current}, this version needs {head}",
        f"run `gateway migrate`{also}",
    )


async def _stored_secrets(settings: Settings) -> Check:
    """Do the newest endpoint's and source's secrets open under the configured key?"""
    from sqlalchemy import select
    from sqlmodel import col

    from gateway.crypto import KEY_FILE, PREFIX, SecretKeyError, load_box
    from gateway.inbound.sources import SECRET as SOURCE_SECRET
    from gateway.outbound.endpoints import SECRET as ENDPOINT_SECRET
    from gateway.store.models import Endpoint, Source

    name = "stored secrets"
    engine = _engine(settings)
    try:
        async with engine.connect() as conn:
            samples = [
                (f"{what} {row.id}", row.secret, purpose)
                for model, what, purpose in (
                    (Endpoint, "endpoint", ENDPOINT_SECRET),
                    (Source, "source", SOURCE_SECRET),
                )
                for row in (
                    await conn.execute(
                        select(col(model.id), col(model.secret))
                        .order_by(col(model.id).desc())
                        .limit(1)
                    )
                ).all()
            ]
    except Exception as exc:
        return Check(name, FAIL, f"cannot read them: {describe(exc)}", "run `gateway doctor` again")
    finally:
        await engine.dispose()
    if not samples:
        return Check(name, OK, "none stored yet")
    key_file = settings.data_dir / KEY_FILE
    if not settings.secret_key and settings.is_sqlite and not key_file.exists():
        if any(secret.startswith(PREFIX) for _, secret, _ in samples):
            return Check(
                name,
                FAIL,
                f"secrets are stored encrypted, but {key_file} is missing",
                f"restore {key_file} from the backup of the database, or set "
                "GATEWAY_SECRET_KEY to the key they were sealed with",
            )
        return Check(name, OK, "stored unencrypted (from before encryption at rest)")
    try:
        box = load_box(settings)
        for what, secret, purpose in samples:
            try:
                box.open(secret, purpose)
            except SecretKeyError as exc:
                return Check(
                    name,
                    FAIL,
                    f"the secret of {what} does not open: {exc}",
                    "set GATEWAY_SECRET_KEY to the key the secrets were sealed with "
                    "(and earlier keys in GATEWAY_OLD_SECRET_KEYS)",
                )
    except SecretKeyError as exc:
        return Check(name, FAIL, str(exc), "see the secret key check")
    return Check(
        name,
        OK,
        f"the newest ones open under the configured key "
        f"({', '.join(what for what, _, _ in samples)})",
    )


async def _redis(settings: Settings) -> Check:
    import asyncio

    from gateway.queue.dispatch import ArqDispatcher

    name = "redis"
    if settings.redis_url is None:
        return Check(
            name,
            OK,
            "not configured: embedded mode, one `gateway serve` process delivers in-process",
        )
    where = shown_url(settings.redis_url)
    fix = (
        "start Redis, or correct GATEWAY_REDIS_URL; meanwhile events are accepted but not delivered"
    )
    dispatcher = ArqDispatcher(settings.redis_url, settings.queue_name)
    try:
        async with asyncio.timeout(TIMEOUT):
            await dispatcher.redis.ping()
    except TimeoutError:
        return Check(name, FAIL, f"{where} did not answer within {TIMEOUT:g} s", fix)
    except Exception as exc:
        return Check(name, FAIL, f"{where} does not answer: {describe(exc)}", fix)
    finally:
        await dispatcher.close()
    return Check(name, OK, f"{where} answers")


def _clock(settings: Settings, skew: float) -> Check:
    name = "clock"
    if settings.is_sqlite:
        return Check(name, OK, "SQLite runs in the gateway's process, on this machine's clock")
    direction = "ahead of" if skew > 0 else "behind"
    detail = f"the database's clock is {abs(skew):.1f} s {direction} this machine's"
    if abs(skew) <= MAX_SKEW:
        return Check(name, OK, detail)
    return Check(
        name,
        WARN,
        detail,
        "synchronise both machines' clocks (NTP: chrony or "
        "systemd-timesyncd); skew moves retries and leases, and receivers refuse "
        "signatures with a timestamp minutes off",
    )


def _engine(settings: Settings) -> AsyncEngine:
    from gateway.db import create_engine

    return create_engine(settings)
