"""The `gateway` command: serve the API, run workers, migrate the database."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from gateway.settings import Settings

app = typer.Typer(help="Webhook gateway: signed, retried webhook delivery.", no_args_is_help=True)
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "configuration"
            err.print(f"[red]invalid configuration[/red] GATEWAY_{where.upper()}: {error['msg']}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes (needs Redis).")] = 1,
) -> None:
    """Serve the HTTP API; without GATEWAY_REDIS_URL it also delivers, in-process."""
    import uvicorn

    from gateway import migrate as migrations
    from gateway.logs import configure_logging

    settings = _settings()
    if settings.embedded and workers > 1:
        err.print("[red]--workers above 1 needs GATEWAY_REDIS_URL[/red]: in embedded mode "
                  "each process would deliver on its own.")
        raise typer.Exit(2)
    if settings.is_sqlite:
        migrations.upgrade(settings)  # embedded: one command gives a working gateway
    configure_logging(settings.log_level)
    uvicorn.run(
        "gateway.main:create_app", factory=True, host=host, port=port, workers=workers,
        # uvicorn's records go through the gateway's handler, and its secret filter.
        log_config=None,
        loop="uvloop", http="httptools", log_level=settings.log_level.lower(),
        access_log=False, timeout_graceful_shutdown=int(settings.delivery_timeout) + 5,
    )


@app.command()
def worker() -> None:
    """Run an arq delivery worker (needs GATEWAY_REDIS_URL)."""
    import asyncio

    import uvloop

    from gateway.logs import configure_logging
    from gateway.queue.worker import create_worker

    settings = _settings()
    if settings.redis_url is None:
        err.print("[red]GATEWAY_REDIS_URL is not set[/red]: workers take their jobs from Redis. "
                  "Without Redis, `gateway serve` delivers in-process.")
        raise typer.Exit(2)
    configure_logging(settings.log_level)
    logging.getLogger("arq").setLevel(logging.WARNING)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())
    create_worker(settings).run()


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the database schema."""
    from gateway import migrate as migrations

    settings = _settings()
    migrations.upgrade(settings, revision)
    err.print(f"[green]database at {revision}[/green]")


keys = typer.Typer(help="Manage API keys (directly in the database).", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    tenant: Annotated[str | None, typer.Option(help="Scope the key to this tenant_id.")] = None,
) -> None:
    """Create an API key and print it (it is shown this once; only its hash is kept)."""
    import asyncio

    from gateway.auth import create_key
    from gateway.db import create_engine, create_sessionmaker

    settings = _settings()

    async def create() -> tuple[str, str]:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                row, key = await create_key(session, name, tenant)
                await session.commit()
                return row.id, key
        finally:
            await engine.dispose()

    key_id, key = asyncio.run(create())
    err.print(f"created {key_id}" + (f" for tenant {tenant}" if tenant else "")
              + "; the key is shown only now:")
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
    import asyncio

    from rich.progress import Progress

    from gateway.crypto import SecretKeyError, load_box
    from gateway.db import create_engine, create_sessionmaker
    from gateway.rekey import count_rows, rotate

    settings = _settings()
    if not settings.secret_key:
        err.print("[red]GATEWAY_SECRET_KEY is not set[/red]: set the new key there and the "
                  "old one in GATEWAY_OLD_SECRET_KEYS.")
        raise typer.Exit(2)

    async def run() -> int:
        box = load_box(settings)
        engine = create_engine(settings)
        try:
            sessionmaker = create_sessionmaker(engine)
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("re-encrypting", total=await count_rows(sessionmaker))
                return await rotate(sessionmaker, box,
                                    lambda n: progress.advance(task, n))
        finally:
            await engine.dispose()

    try:
        changed = asyncio.run(run())
    except SecretKeyError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    err.print(f"[green]re-encrypted {changed} rows[/green] under the current key; "
              "GATEWAY_OLD_SECRET_KEYS can be emptied once every process has the new key.")


if __name__ == "__main__":
    app()
