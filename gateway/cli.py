"""The `gateway` command: serve the API, run workers, migrate the database, and manage it.

The management commands (endpoints, events, deliveries, sources, recover, doctor,
keys list/revoke) live in `gateway.commands`, one module per group. What a command
needs beyond typer and rich is imported inside it, so that `gateway --help` and each
command load only their own part (tests/cli/test_cli_startup.py checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gateway import commands
from gateway.commands.common import err
from gateway.commands.common import load_settings as _settings
from gateway.commands.running import run, run_db

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from gateway.db import SessionMaker
    from gateway.settings import Settings

app = typer.Typer(help="Webhook gateway: signed, retried webhook delivery.", no_args_is_help=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes (needs Redis).")] = 1,
) -> None:
    """Serve the HTTP API; without GATEWAY_REDIS_URL it also delivers, in-process."""
    import uvicorn

    from gateway.commands import startup
    from gateway.httpserver import GuardedHttpToolsProtocol
    from gateway.logs import configure_logging

    settings = _settings()
    if settings.embedded and workers > 1:
        err.print(
            "[red]--workers above 1 needs GATEWAY_REDIS_URL[/red]: in embedded mode "
            "each process would deliver on its own."
        )
        raise typer.Exit(2)
    configure_logging(settings.log_level)
    startup.check_before_start(
        settings,
        migrate=settings.is_sqlite,
        without_redis="events are accepted and kept, and delivered once it answers; "
        "/readyz says not ready until then",
    )
    uvicorn.run(
        "gateway.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # uvicorn's records go through the gateway's handler, and its secret filter.
        log_config=None,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=int(settings.delivery_timeout) + 5,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Jobs this worker runs at once (default GATEWAY_WORKER_MAX_JOBS).", min=1
        ),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve this worker's Prometheus metrics on this port.")
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address for --metrics-port (0.0.0.0 to be scraped from elsewhere).")
    ] = "127.0.0.1",
) -> None:
    """Run an arq delivery worker (needs GATEWAY_REDIS_URL)."""
    import asyncio
    import logging

    import uvloop
    from prometheus_client import start_http_server
    from redis.exceptions import ConnectionError as RedisConnectionError

    from gateway.commands import startup
    from gateway.commands.common import shown_url
    from gateway.logs import configure_logging
    from gateway.worker import create_worker

    settings = _settings()
    if settings.redis_url is None:
        err.print(
            "[red]GATEWAY_REDIS_URL is not set[/red]: workers take their jobs from Redis. "
            "Without Redis, `gateway serve` delivers in-process."
        )
        raise typer.Exit(2)
    configure_logging(settings.log_level)
    startup.check_before_start(
        settings, migrate=False, without_redis="the worker tries a few times more, then stops"
    )
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_max_jobs": concurrency})
    logging.getLogger("arq").setLevel(logging.WARNING)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())
    try:
        create_worker(settings).run()
    except (RedisConnectionError, OSError) as exc:
        raise startup.stop(
            f"cannot reach Redis at {shown_url(settings.redis_url or '')} "
            f"({startup.describe(exc)}); check that it is running and that "
            "GATEWAY_REDIS_URL is right",
            exc,
        ) from None


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Change nothing: exit 0 when this version can serve the schema, "
            "1 naming the fix while it is behind.",
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            help="With --check: keep checking for up to this many seconds "
            "(an init container waiting for the migrate Job).",
            min=0,
        ),
    ] = 0,
) -> None:
    """Create or upgrade the database schema (or, with --check, only check it)."""
    from gateway import migrate as migrations

    settings = _settings()
    if check:
        raise typer.Exit(_wait_for_schema(settings, wait))
    if wait:
        err.print("[red]--wait goes with --check[/red]: `gateway migrate` itself does not wait.")
        raise typer.Exit(2)
    migrations.upgrade(settings, revision)
    err.print(f"[green]database at {revision}[/green]")


def _wait_for_schema(settings: Settings, wait: float) -> int:
    """0 once this version can serve the database, 1 if it still cannot after `wait`
    seconds. A database that does not answer counts as not ready yet: in Kubernetes the
    init container running this may start before the database or the migrate Job."""
    import asyncio
    import time

    from gateway import migrate as migrations

    deadline = time.monotonic() + wait
    told: str | None = None
    while True:
        try:
            problem = asyncio.run(migrations.schema_problem(settings))
        except Exception as exc:  # the URL may hold a password: name the error only
            problem = f"the database does not answer ({type(exc).__name__})"
        if problem is None:
            err.print("[green]the database schema is ready for this version[/green]")
            return 0
        left = deadline - time.monotonic()
        if left <= 0:
            err.print(f"[red]error:[/red] {problem}")
            return 1
        if problem != told:
            err.print(f"waiting up to {left:.0f} s: {problem}")
            told = problem
        time.sleep(min(2.0, left))


keys = typer.Typer(help="Manage API keys (directly in the database).", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    tenant: Annotated[str | None, typer.Option(help="Scope the key to this tenant_id.")] = None,
) -> None:
    """Create an API key and print it (it is shown this once; only its hash is kept)."""
    from gateway.auth import create_key

    settings = _settings()

    async def create(session: AsyncSession) -> tuple[str, str]:
        row, key = await create_key(session, name, tenant)
        await session.commit()
        return row.id, key

    key_id, key = run(settings, create)
    err.print(
        f"created {key_id}"
        + (f" for tenant {tenant}" if tenant else "")
        + "; the key is shown only now:"
    )
    print(key)


secret_key = typer.Typer(help="The key that encrypts secrets at rest.", no_args_is_help=True)
app.add_typer(secret_key, name="secret-key")


@secret_key.command("generate")
def secret_key_generate() -> None:
    """Print a new key for GATEWAY_SECRET_KEY."""
    from gateway.crypto import generate_key

    print(generate_key())


@secret_key.command("rotate")
def secret_key_rotate() -> None:
    """Re-encrypt every stored secret under GATEWAY_SECRET_KEY.

    Set the new key in GATEWAY_SECRET_KEY and the old one in GATEWAY_OLD_SECRET_KEYS
    (for this command and for every running process), run this, then drop the old key.
    """
    from rich.progress import Progress

    from gateway.crypto import load_box
    from gateway.rekey import count_rows, rotate

    settings = _settings()
    if not settings.secret_key:
        err.print(
            "[red]GATEWAY_SECRET_KEY is not set[/red]: set the new key there and the "
            "old one in GATEWAY_OLD_SECRET_KEYS."
        )
        raise typer.Exit(2)

    async def reseal(sessionmaker: SessionMaker) -> int:
        box = load_box(settings)  # a key that is not usable: exit 1 with its message
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("re-encrypting", total=await count_rows(sessionmaker))
            return await rotate(sessionmaker, box, lambda n: progress.advance(task, n))

    changed = run_db(settings, reseal)
    err.print(
        f"[green]re-encrypted {changed} rows[/green] under the current key; "
        "GATEWAY_OLD_SECRET_KEYS can be emptied once every process has the new key."
    )


commands.register(app, keys)

if __name__ == "__main__":
    app()
