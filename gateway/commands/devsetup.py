"""`gateway dev-setup`: the development defaults, written where every command reads them.

`make run` calls it. Settings come from the environment, then the dotenv file
(`gateway.settings.env_file`), so what it writes there holds alike for `gateway
serve`, `gateway worker` and every management command started in this directory:
the server cannot accept an endpoint that the CLI or a worker then refuses.
"""

from __future__ import annotations

from pathlib import Path

from gateway.commands.common import err, fail

# Loopback is refused in production (an endpoint there reaches the gateway's own
# host); on a laptop it is where the receiver you try deliveries with listens.
DEV_DEFAULTS = {"GATEWAY_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128"}


def dev_setup() -> None:
    """Write development defaults (endpoints on loopback allowed) into .env, keeping what
    is there; every gateway command started in this directory then reads them."""
    from dotenv import dotenv_values

    from gateway.settings import env_file

    name = env_file()
    if name is None:
        fail("GATEWAY_ENV_FILE is empty, so no dotenv file is read: name one, or unset it")
    path = Path(name)
    present = dotenv_values(path) if path.exists() else {}
    missing = {key: value for key, value in DEV_DEFAULTS.items() if key not in present}
    if missing:
        text = path.read_text() if path.exists() else ""
        lines = "".join(f"{key}={value}\n" for key, value in missing.items())
        separator = "\n" if text and not text.endswith("\n") else ""
        header = "" if text else "# Development settings (gateway dev-setup); not for production.\n"
        path.write_text(text + separator + header + lines)
    for key, value in DEV_DEFAULTS.items():
        if key in missing:
            err.print(f"{path}: {key}={value} (development: endpoints on loopback allowed)")
        else:
            err.print(f"{path}: keeps {key}={present[key]}")
