"""An update event's `previous_data` on the console's event page and the portal's, shown
as text beside its data (and absent for an event without it)."""

from __future__ import annotations

import html
import json
import re
from contextlib import closing
from typing import Any

from tests.console.test_portal import portal_client, portal_link
from tests.support.console import signed_in_client
from tests.support.gateway import Gateway
from tests.support.helpers import publish

BEFORE = {"order": "o_1", "status": "<b>open</b>"}
AFTER = {"order": "o_1", "status": "paid"}


def _shown(page: str) -> Any:
    """The JSON the page shows as `previous_data` (None when it shows none)."""
    found = re.search(r'<pre id="previous-payload">(.*?)</pre>', page, re.S)
    return None if found is None else json.loads(html.unescape(found.group(1)))


def test_the_event_pages_show_previous_data(gw: Gateway) -> None:
    updated = publish(gw, "order.updated", AFTER, previous_data=BEFORE, tenant_id="acme")
    plain = publish(gw, "order.created", AFTER, tenant_id="acme")
    client, _csrf = signed_in_client(gw)
    with closing(client):
        page = client.get(f"/console/events/{updated['id']}")
        assert page.status_code == 200, page.text
        assert _shown(page.text) == BEFORE
        assert "<b>open</b>" not in page.text  # shown as text
        assert _shown(client.get(f"/console/events/{plain['id']}").text) is None
    portal, _csrf = portal_client(gw, portal_link(gw, "acme"))
    with closing(portal):
        page = portal.get(f"/portal/events/{updated['id']}")
        assert page.status_code == 200, page.text
        assert _shown(page.text) == BEFORE
        assert "<b>open</b>" not in page.text
        assert _shown(portal.get(f"/portal/events/{plain['id']}").text) is None
