"""Secrets at rest: nothing secret is stored in plaintext, and the key can be rotated live."""

from __future__ import annotations

import base64
import hashlib
import json

from standardwebhooks import Webhook

from gateway.crypto import generate_key
from tests.support.gateway import SECRET_KEY, Gateway
from tests.support.helpers import make_endpoint, publish
from tests.support.receiver import Receiver

TABLES = ("endpoint", "source", "event", "delivery", "attempt", "api_key")


def _dump(gw: Gateway) -> str:
    """Every row of every table, as text: what an attacker with the database would see."""
    return "\n".join(repr(row) for table in TABLES for row in gw.sql(f"SELECT * FROM {table}"))


def _everything_secret(gw: Gateway, receiver: Receiver, path: str) -> tuple[list[str], dict]:
    endpoint = make_endpoint(
        gw,
        receiver.url(path),
        headers={"X-Api-Token": "tok_sup3rsecret"},
        auth={"type": "basic", "username": "hooks", "password": "auth-pa55word"},
    )
    rotated = gw.api.post(f"/v1/endpoints/{endpoint['id']}/secret/rotate").json()["secret"]
    source = gw.api.post(
        "/v1/sources", json={"name": "s", "provider": "github", "secret": "gh-s3cret-value"}
    )
    assert source.status_code == 201, source.text
    key = gw.api.post("/v1/api-keys", json={"name": "k"}).json()["key"]
    publish(gw, "a.b")
    receiver.wait_for(path, 1)
    secrets = [endpoint["secret"], rotated, "tok_sup3rsecret", "gh-s3cret-value", key]
    return [*secrets, "auth-pa55word"], endpoint


def test_no_secret_is_stored_in_plaintext(gw: Gateway, receiver: Receiver, path: str) -> None:
    secrets, _ = _everything_secret(gw, receiver, path)
    dump = _dump(gw)
    for secret in secrets:
        assert secret not in dump
        # Nor the base64 body of a whsec_ secret on its own.
        assert secret.removeprefix("whsec_") not in dump
    assert "enc:v1:" in dump
    # The API still shows what the user needs, opened.
    [endpoint] = gw.api.get("/v1/endpoints").json()["data"]
    assert endpoint["headers"] == {"X-Api-Token": "tok_sup3rsecret"}


def test_key_rotation_reseals_everything_and_deliveries_keep_verifying(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    secrets, endpoint = _everything_secret(gw, receiver, path)
    before = _dump(gw)
    new_key = generate_key()
    env = {"GATEWAY_SECRET_KEY": new_key, "GATEWAY_OLD_SECRET_KEYS": SECRET_KEY}
    saved = dict(gw.env)
    gw.env.update(env)
    try:
        result = gw.run_cli("secret-key", "rotate")
    finally:
        gw.env.clear()
        gw.env.update(saved)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 2 rows" in result.stderr
    after = _dump(gw)
    assert after != before
    new_id = hashlib.sha256(b"gateway key id" + base64.urlsafe_b64decode(new_key)).hexdigest()[:8]
    assert f"enc:v1:{new_id}:" in after
    for secret in secrets:
        assert secret not in after
    # Processes still on the old key alone cannot open the re-sealed rows; restarted with
    # both keys (as the rotation procedure says) they can, and deliveries still verify.
    gw.env.update(env)
    try:
        for worker in list(gw.workers):
            gw.kill(worker)
        gw.kill_server()
        gw.start_server()
        if gw.backend == "postgres":
            gw.start_worker()
        shown = gw.api.get(f"/v1/endpoints/{endpoint['id']}/secret").json()["secret"]
        assert shown == secrets[1]
        auth = gw.api.get(f"/v1/endpoints/{endpoint['id']}/auth").json()["auth"]
        assert auth["password"] == "auth-pa55word"
        publish(gw, "a.c")
        request = receiver.wait_for(path, 2)[-1]
        assert json.loads(request.body)["type"] == "a.c"
        Webhook(shown).verify(request.body, request.headers)
    finally:
        gw.env.clear()
        gw.env.update(saved)
        for worker in list(gw.workers):
            gw.kill(worker)
        gw.kill_server()


def test_bad_secret_key_refuses_to_start(gw: Gateway) -> None:
    saved = dict(gw.env)
    gw.env["GATEWAY_SECRET_KEY"] = "not-a-key"
    try:
        result = gw.run_cli("migrate")
    finally:
        gw.env.clear()
        gw.env.update(saved)
    assert result.returncode == 2
    assert "GATEWAY_SECRET_KEY" in result.stderr and "not-a-key" not in result.stderr


def test_hmac_family_secrets_are_not_stored_in_plaintext(
    gw: Gateway, receiver: Receiver, path: str
) -> None:
    own = "my-own-hmac-secret-value"
    endpoint = make_endpoint(gw, receiver.url(path), signature={"scheme": "hmac"}, secret=own)
    rotated = "my-rotated-stripe-value"
    gw.api.patch(f"/v1/endpoints/{endpoint['id']}", json={"signature": {"scheme": "stripe"}})
    response = gw.api.post(
        f"/v1/endpoints/{endpoint['id']}/secret/rotate", json={"secret": rotated}
    )
    assert response.status_code == 200, response.text
    publish(gw, "a.b")
    receiver.wait_for(path, 1)
    dump = _dump(gw)
    assert own not in dump
    assert rotated not in dump
    assert '"stripe"' in dump  # the scheme's options are not secret, and stored as they are
    assert gw.api.get(f"/v1/endpoints/{endpoint['id']}/secret").json()["secret"] == rotated
