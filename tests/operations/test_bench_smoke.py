"""The benchmark's own arithmetic, without starting anything: log parsing, percentiles,
pass/fail marks and the rate search. (`python -m bench --quick` runs the real thing.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bench import loadgen, nginx, ratesearch
from bench.arrivals import Arrivals, parse_line
from bench.loadgen import LoadRun, Request, Result, percentile
from bench.report import Row


def test_access_log_is_read_incrementally_and_split_by_endpoint(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("1700000000.125 evt_1 /w1/k10/e0 204\n1700000000.130 evt_1 /w1/k10/e1 2")
    arrivals = Arrivals(log)
    assert arrivals.count("/w1/k10") == 1  # the half-written line waits
    with open(log, "a") as f:
        f.write("04\n1700000000.200 - /y1/aiohttp/x 204\n")
    assert arrivals.count("/w1/k10") == 2
    assert arrivals.count("/y1/aiohttp") == 1
    assert [a.uri for a in arrivals.of("/w1/k10")] == ["/w1/k10/e0", "/w1/k10/e1"]
    assert parse_line("garbage") is None


def test_nginx_config_logs_what_the_ledger_needs(tmp_path: Path) -> None:
    text = nginx.config(tmp_path, 12345)
    assert "listen 127.0.0.1:12345" in text
    assert "daemon off;" in text and "master_process off;" in text
    assert "$msec $http_webhook_id $request_uri" in text
    assert "return 204" in text


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile([], 99) == 0


def test_rows_mark_targets_and_void() -> None:
    assert Row("w", 30, 100, target=(">=", 0.3)).passed is True
    assert Row("w", 29, 100, target=(">=", 0.3)).passed is False
    assert Row("w", 99, unit="ms", target=("<", 100), on="gateway").passed is True
    assert Row("w", 30, 100, target=(">=", 0.3), void=True).passed is None
    assert Row("y", None, 100).ratio is None


def test_rate_search_finds_the_knee(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake server that holds 1,000/s: above it every latency is 200 ms.
    async def fake_open_loop(
        _client: object, requests: Sequence[Request], rate: float, keep_body: bool = False
    ) -> LoadRun:
        latency = 0.005 if rate <= 1000 else 0.2
        return LoadRun(rate, [Result(0, latency, 0, 202) for _ in requests], 1.0)

    monkeypatch.setattr(loadgen, "open_loop", fake_open_loop)
    monkeypatch.setattr(ratesearch, "SETTLE_SECONDS", 0)
    search = ratesearch.search(
        lambda n: [Request("u", b"", {})] * n, 0.01, refine=6, log=lambda _line: None
    )
    assert 900 <= search.held <= 1000
    assert not search.generator_limited


def test_purge_soak_quarters_split_the_deliveries_and_time_between_samples() -> None:
    from bench.w5_soak import quarters

    # 1,000 deliveries: 100/s for the first half, then 50/s; worker CPU 1 ms each.
    samples = [
        {"t": float(t), "delivered": d, "worker_cpu": d / 1000}
        for t, d in [(0, 0), (2.5, 250), (5, 500), (10, 750), (15, 1000)]
    ]
    q = quarters(samples, 1000)
    assert [round(x["drain_per_s"]) for x in q] == [100, 100, 50, 50]
    assert [x["delivered"] for x in q] == [250, 500, 750, 1000]
    assert all(abs(x["worker_cpu_ms_per_delivery"] - 1) < 1e-9 for x in q)


def test_purge_soak_lasts_past_its_tables_level_off_unless_quick() -> None:
    from bench.context import QUICK, Sizes
    from bench.w5_soak import PURGE_SOAK_SECONDS, purge_soak_rate

    # 60% of 2,575 deliveries/s would end 1,000,000 in 6.5 minutes: slowed to 25.
    rate = purge_soak_rate(Sizes(), 2_575 / 0.6)
    assert 1_000_000 / 10 / rate == pytest.approx(PURGE_SOAK_SECONDS)
    # A slower gateway keeps its 60%, and --quick its few minutes.
    assert purge_soak_rate(Sizes(), 1_000) == pytest.approx(60)
    assert purge_soak_rate(QUICK, 2_575 / 0.6) == pytest.approx(257.5)
