"""Management commands of `gateway`, one module per group, registered by `gateway.cli`.

They work on the database directly with the services the API uses; see `common`.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer, keys: typer.Typer) -> None:
    from gateway.commands import (
        deliveries,
        devsetup,
        doctor,
        endpoints,
        event_types,
        events,
        listen,
        receive,
        recover,
        retention,
        sources,
    )
    from gateway.commands import keys as key_commands

    key_commands.register(keys)
    app.add_typer(endpoints.app, name="endpoints")
    app.add_typer(events.app, name="events")
    app.add_typer(event_types.app, name="event-types")
    app.add_typer(deliveries.app, name="deliveries")
    app.add_typer(sources.app, name="sources")
    app.command("recover")(recover.recover)
    app.command("doctor")(doctor.doctor)
    app.command("purge")(retention.purge)
    app.command("receive")(receive.receive)
    app.command("listen")(listen.listen)
    app.command("dev-setup")(devsetup.dev_setup)
