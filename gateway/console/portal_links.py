"""The console's portal links page: make a link to a tenant's portal (shown once: nothing
is stored) and revoke all of a tenant's links. Admins only, as the API's routes are."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from gateway import portal_links as links
from gateway.api.deps import BoxDep, SessionDep, SettingsDep
from gateway.console.web import CheckedFormDep, SignedInDep, render
from gateway.signin import SignedIn

router = APIRouter(prefix="/console/portal-links", include_in_schema=False)

# What the form offers; the API takes any number of seconds from 1 to 7 days.
LIFETIMES = (
    (900, "15 minutes"),
    (3600, "1 hour"),
    (8 * 3600, "8 hours"),
    (24 * 3600, "1 day"),
    (7 * 24 * 3600, "7 days"),
)


def _page(
    request: Request,
    user: SignedIn,
    form: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    created: dict[str, object] | None = None,
    revoked: str | None = None,
) -> Response:
    return render(
        request,
        "portal_links.html",
        {
            "form": form or {"expires_in": "3600"},
            "errors": errors or {},
            "created": created,
            "revoked": revoked,
            "lifetimes": LIFETIMES,
        },
        status_code=422 if errors else 200,
        signed_in=user,
    )


@router.get("", response_class=HTMLResponse)
async def portal_links_page(request: Request, user: SignedInDep) -> Response:
    user.principal.require_admin()
    return _page(request, user)


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = error.get("loc", ())
        errors.setdefault(str(loc[0]) if loc else "form", []).append(error.get("msg", "invalid"))
    return errors


@router.post("", response_class=HTMLResponse)
async def create_portal_link(
    request: Request, user: SignedInDep, form: CheckedFormDep, settings: SettingsDep, box: BoxDep
) -> Response:
    user.principal.require_admin()
    kept = {
        "tenant_id": form.get("tenant_id", "").strip(),
        "expires_in": form.get("expires_in", ""),
    }
    try:
        body = links.PortalLinkCreate.model_validate(kept)
    except ValidationError as exc:
        return _page(request, user, kept, _errors(exc))
    token, expires_at = links.create_link(box, body.tenant_id, body.expires_in)
    url = links.link_url(token, settings.public_url, str(request.base_url))
    created = {"tenant_id": body.tenant_id, "url": url, "expires_at": expires_at}
    return _page(request, user, kept, created=created)


@router.post("/revoke", response_class=HTMLResponse)
async def revoke_portal_links(
    request: Request, user: SignedInDep, form: CheckedFormDep, session: SessionDep
) -> Response:
    user.principal.require_admin()
    kept = {"revoke_tenant_id": form.get("revoke_tenant_id", "").strip()}
    try:
        body = links.PortalLinksRevoke.model_validate({"tenant_id": kept["revoke_tenant_id"]})
    except ValidationError as exc:
        errors = {"revoke_tenant_id": _errors(exc).get("tenant_id", ["invalid"])}
        return _page(request, user, kept, errors)
    await links.revoke_links(session, body.tenant_id)
    return _page(request, user, revoked=body.tenant_id)
