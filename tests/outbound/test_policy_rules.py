"""An endpoint's retry policy as pure functions: merged with the settings, and deciding
when (if ever) to try again; the warning levels; what a warning email says."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.mail import parse_url
from gateway.outbound.alerts import compose
from gateway.outbound.policy import RetryPolicy, effective, retry_delay, warning_level
from gateway.settings import Settings

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _settings(**values: Any) -> Settings:
    return Settings(retry_schedule="5,300", **values)


def test_no_policy_is_exactly_the_settings() -> None:
    policy = effective(None, _settings())
    assert policy.schedule == [5.0, 300.0]
    assert policy.max_duration is None and not policy.final_statuses
    assert policy.disable_after_failures == 0
    assert effective({}, _settings(disable_after_failures=7)).disable_after_failures == 7


def test_fields_given_override_only_themselves() -> None:
    policy = effective({"schedule": [1, 2, 3], "disable_after_failures": 0}, _settings())
    assert policy.schedule == [1.0, 2.0, 3.0]
    assert policy.disable_after_failures == 0  # 0 is "off", not "left out"
    assert effective({"final_statuses": [404]}, _settings()).schedule == [5.0, 300.0]


def test_final_status_ends_without_retry() -> None:
    policy = effective({"final_statuses": [400, 404]}, _settings())
    assert retry_delay(policy, 1, 404, None, T0, T0) is None
    assert retry_delay(policy, 1, 500, None, T0, T0) is not None
    assert retry_delay(policy, 1, None, None, T0, T0) is not None  # no answer: retried


def test_max_duration_repeats_the_last_interval_until_it_has_passed() -> None:
    policy = effective({"schedule": [10, 60], "max_duration": 3600}, _settings())
    rand = random.Random(3)
    # Inside the schedule: as before.
    first = retry_delay(policy, 1, 500, None, T0, T0, rand)
    assert first is not None and 8 <= first <= 12
    # Past it, still within the hour: the last interval, with jitter.
    later = retry_delay(policy, 9, 500, None, T0, T0 + timedelta(minutes=30), rand)
    assert later is not None and 48 <= later <= 72
    # An hour after the first attempt: done.
    assert retry_delay(policy, 9, 500, None, T0, T0 + timedelta(hours=1)) is None
    # Without max_duration the schedule's end is the end.
    assert retry_delay(effective({"schedule": [10]}, _settings()), 2, 500, None, T0, T0) is None


def test_retry_after_stays_a_floor_past_the_schedule() -> None:
    policy = effective({"schedule": [1], "max_duration": 600}, _settings())
    delay = retry_delay(policy, 5, 503, 120.0, T0, T0 + timedelta(seconds=10))
    assert delay == 120.0


@pytest.mark.parametrize(
    "fraction, level", [(0.0, 0), (0.49, 0), (0.5, 50), (0.69, 50), (0.7, 70), (0.95, 90)]
)
def test_warning_levels(fraction: float, level: int) -> None:
    assert warning_level(fraction) == level


@pytest.mark.parametrize(
    "body, where",
    [
        ({"schedule": [-1]}, "schedule[0]"),
        ({"schedule": [1, 10**9]}, "schedule[1]"),
        ({"schedule": [1.0] * 51}, "schedule"),
        ({"max_duration": 0}, "max_duration"),
        ({"final_statuses": [200]}, "final_statuses[0]"),
        ({"disable_after_failures": -1}, "disable_after_failures"),
        ({"retries": 3}, "retries"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(body: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetryPolicy.model_validate(body)
    assert where.split("[")[0] in str(caught.value)
    assert where in str(caught.value) or "[" not in where


def test_stored_policy_keeps_only_what_was_given() -> None:
    given = RetryPolicy.model_validate({"final_statuses": [404, 400, 404]})
    assert given.stored() == {"final_statuses": [400, 404]}
    assert RetryPolicy.model_validate({}).stored() is None


def test_smtp_url_is_parsed_and_shown_without_its_password() -> None:
    server = parse_url("smtps://mailer:s3cr%40t@mail.example.com")
    assert (server.host, server.port, server.tls) == ("mail.example.com", 465, True)
    assert server.password == "s3cr@t"
    assert "s3cr" not in str(server) and "s3cr" not in repr(_settings_error())


def _settings_error() -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(smtp_url="http://mailer:s3cret@mail.example.com")
    return str(caught.value.errors()[0]["msg"])


def test_warning_email_names_the_endpoint_and_errors_but_no_secret() -> None:
    endpoint = SimpleNamespace(
        id="ep_1", url="https://user:pw@hooks.example.com/in?token=abc", tenant_id="acme"
    )
    errors = [SimpleNamespace(started_at=T0, status_code=503, error=None)]
    subject, text = compose(endpoint, "failing", {"percent": 70, "rule_text": "x"}, errors)  # type: ignore[arg-type]
    assert "70%" in subject
    assert "ep_1" in text and "https://hooks.example.com/in" in text and "HTTP 503" in text
    assert "token" not in text and "pw" not in text
    assert "recover" in text
