"""The settings object parses what operators write and refuses unsafe combinations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.ids import new_id
from gateway.settings import Settings


def test_defaults_match_the_contract() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "sqlite+aiosqlite:///./gateway.db"
    assert settings.retry_schedule == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert settings.max_attempts == 8
    assert settings.delivery_timeout == 15
    assert settings.embedded and settings.allowed_networks == []


def test_env_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_RETRY_SCHEDULE", "1, 2.5,10")
    monkeypatch.setenv("GATEWAY_ALLOWED_NETWORKS", "127.0.0.0/8, 10.0.0.0/8,::1/128")
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings()
    assert settings.retry_schedule == [1, 2.5, 10]
    assert [str(n) for n in settings.allowed_networks] == ["127.0.0.0/8", "10.0.0.0/8", "::1/128"]
    assert not settings.embedded


def test_job_timeout_must_exceed_delivery_timeout() -> None:
    # A job timeout at or under the attempt timeout makes arq re-run jobs still sending.
    with pytest.raises(ValidationError, match="JOB_TIMEOUT"):
        Settings(delivery_timeout=30, job_timeout=30)
    assert Settings(delivery_timeout=30).job_timeout == 70


@pytest.mark.parametrize(
    "field, value",
    [
        ("retry_schedule", "5,-1"),
        ("allowed_networks", "not-a-network"),
        ("delivery_timeout", "0"),
        ("purge_interval_minutes", "7"),
        ("purge_interval_minutes", "0"),
    ],
)
def test_bad_values_refused(monkeypatch: pytest.MonkeyPatch, field: str, value: str) -> None:
    monkeypatch.setenv(f"GATEWAY_{field.upper()}", value)
    with pytest.raises((ValidationError, ValueError)):
        Settings()


def test_purge_runs_at_minute_17_and_every_interval_from_it() -> None:
    from gateway.worker import purge_minutes

    assert purge_minutes(Settings(_env_file=None).purge_interval_minutes) == {17}  # type: ignore[call-arg]
    assert purge_minutes(15) == {2, 17, 32, 47}
    assert purge_minutes(1) == set(range(60))
    with pytest.raises(ValidationError, match="divide an hour"):
        Settings(purge_interval_minutes=7)


def test_ids_are_prefixed_and_sort_by_time() -> None:
    ids = [new_id("evt") for _ in range(50)]
    assert all(i.startswith("evt_") and len(i) == 30 for i in ids)
    assert len(set(ids)) == 50
    later = new_id("evt")
    assert later[:14] >= ids[0][:14]


def test_ids_made_in_one_millisecond_still_sort_in_order() -> None:
    ids = [new_id("dlv") for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_log_filter_masks_secrets_in_messages_and_tracebacks() -> None:
    import logging

    from gateway.logs import RedactSecrets

    secrets = [
        "whsec_" + "A" * 40,
        "gw_" + "b" * 40,
        "Bearer " + "c" * 20,
        "v1," + "D" * 44,
        "sha256=" + "e" * 64,
        "v0=" + "f" * 64,
    ]
    try:
        raise ValueError(" ".join(secrets))
    except ValueError:
        import sys

        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "got %s", (secrets[0],), sys.exc_info()
        )
    assert RedactSecrets().filter(record)
    text = record.getMessage() + (record.exc_text or "")
    for secret in secrets:
        assert secret not in text
    assert "[redacted]" in text


def test_terminal_log_lines_carry_the_context_json_lines_carry() -> None:
    import logging

    from gateway.logs import ConsoleFormatter

    record = logging.LogRecord(
        "gateway", logging.INFO, __file__, 1, "attempt %s", ("failed",), None
    )
    context = {"event_id": "evt_1", "delivery_id": "dlv_2", "endpoint_id": "ep_3"}
    for key, value in {
        **context,
        "status_code": 500,
        "error": "timed out",
        "deferred_s": None,
    }.items():
        setattr(record, key, value)
    line = ConsoleFormatter().format(record)
    assert line.endswith(
        "attempt failed event_id=evt_1 delivery_id=dlv_2 endpoint_id=ep_3 status_code=500 "
        'error="timed out"'
    )


def test_redis_url_takes_a_server_or_sentinels_and_never_echoes_a_password() -> None:
    from gateway.redisurl import SentinelTarget, parse_sentinel, shown

    url = "redis+sentinel://:s3cret@10.0.0.1:26380,[::1],sentinel-b/main%2Fq/2"
    assert parse_sentinel(url) == SentinelTarget(
        sentinels=[("10.0.0.1", 26380), ("::1", 26379), ("sentinel-b", 26379)],
        master="main/q",
        db=2,
        password="s3cret",
    )
    assert parse_sentinel("redis://127.0.0.1:6379/0") is None
    assert shown(url) == "redis+sentinel://:***@10.0.0.1:26380,[::1],sentinel-b/main%2Fq/2"
    for bad, says in [
        ("http://:s3cret@host/0", "not a Redis URL"),
        ("redis+sentinel://:s3cret@host:26379", "names the master"),
        ("redis+sentinel://:s3cret@/main/0", "at least one Sentinel"),
        ("redis+sentinel://:s3cret@host:x/main/0", "host:port"),
        ("redis://:s3cret@host:6379/zero", "must be a number"),
    ]:
        with pytest.raises(ValidationError, match=says) as refused:
            Settings(_env_file=None, redis_url=bad)  # type: ignore[call-arg]
        assert "s3cret" not in str(refused.value.errors()[0]["msg"])
