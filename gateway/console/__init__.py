"""The web console: operators' pages under /console, server-rendered.

`web` holds what every page shares (templates, the signed-in dependency, CSRF,
security headers, error pages); one module per area holds its pages. Pages call the
domain services the API and the CLI call, and add no query of their own.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    """Mount the console's pages, static files and the answers to its two exceptions."""
    from gateway.console import (
        endpoints,
        event_types,
        events,
        keys,
        pages,
        portal,
        portal_links,
        sources,
        web,
    )

    app.mount("/console/static", StaticFiles(directory=web.HERE / "static"), name="console-static")
    for module in (pages, endpoints, portal, portal_links, events, event_types, sources, keys):
        app.include_router(module.router)

    @app.exception_handler(web.SignInRequired)
    async def sign_in(_request: Request, exc: web.SignInRequired) -> Response:
        return web.sign_in_redirect(exc.path)

    @app.exception_handler(web.BadCsrf)
    async def bad_csrf(request: Request, _exc: web.BadCsrf) -> Response:
        return web.error_page(
            request,
            403,
            "This form has expired or did not come from this console: nothing "
            "was changed. Reload the page and try again.",
        )
