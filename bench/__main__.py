"""`make bench`: the gateway against yardsticks measured in the same run, on loopback.

    python -m bench [all|yardsticks|w1|w2|w3|w4|w5|embedded ...] [--quick] [options]
    python -m bench w5-purge [--soak N]    (not part of `all`: ~25 minutes)

Y1 client ceiling, Y2 ingest ceiling, Y3 queue ceiling, Y4 durable ingest; W1 fan-out
throughput, W2 ingest, W3 latency, W4 isolation, W5 soak, and W1 + W2 again in embedded
mode.
Everything it starts it stops (even on an error or Ctrl-C), every database it
creates it drops, and it prints one table, also written to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from bench import (
    arq_jobs,
    embedded,
    pages,
    procs,
    report,
    w1_fanout,
    w1_oauth2,
    w1_ordered,
    w1_signing,
    w1_transform,
    w2_batch,
    w2_filters,
    w2_ingest,
    w2_schema,
    w3_latency,
    w4_isolation,
    w5_soak,
    y1_clients,
    y2_ingest,
    y4_ingest,
)
from bench.context import QUICK, Run, Sizes
from bench.harness import PG_URL, REDIS_URL
from bench.receivers import start_receiver
from bench.report import Row

# Average cores other processes may take during a section before the bench says so.
BUSY_CORES = 0.25


def _yardsticks(run: Run) -> list[Row]:
    arq_jobs.ceiling(run)
    y1_clients.aiohttp_ceiling(run)
    y1_clients.httpx_ceiling(run)
    y2_ingest.ceiling(run)
    y4_ingest.ceiling(run)
    return []  # their rows are added at the end, with any measured on demand


SECTIONS: dict[str, tuple[str, Callable[[Run], list[Row]]]] = {
    "yardsticks": ("Y1-Y4 yardsticks", _yardsticks),
    "w1": ("W1 fan-out throughput", w1_fanout.run_w1),
    "w1-transform": ("W1 with a transformation on every endpoint", w1_transform.run_w1_transform),
    "w1-oauth2": ("W1 with OAuth2 on every endpoint (token cached)", w1_oauth2.run_w1_oauth2),
    "w1-hmac": ("W1 with hmac signing on every endpoint", w1_signing.run_w1_signing),
    "ordered": ("W1 to ordered endpoints: 1,000 keys, and one hot key", w1_ordered.run_w1_ordered),
    "w3": ("W3 latency", w3_latency.run_w3),
    "w2": ("W2 ingest", w2_ingest.run_w2),
    "w2-schema": ("W2 publish with a catalogued schema", w2_schema.run_w2_schema),
    "w2-batch": ("W2 batch publish against single publishes", w2_batch.run_w2_batch),
    "filters": ("W2 publish with a CEL filter on 100 endpoints", w2_filters.run_w2_filters),
    "w4": ("W4 isolation", w4_isolation.run_w4),
    "w5": ("W5 soak", w5_soak.run_w5),
    "w5-purge": ("W5 soak with retention purging as it goes", w5_soak.run_w5_purge),
    "embedded": ("Embedded mode (SQLite)", embedded.run_embedded),
    "pages": ("Pages and stats with 1,000,000 attempts", pages.run_pages),
}


# Run only when named: the purge soak takes ~25 minutes on its own.
NOT_IN_ALL = {"w5-purge"}


def _yardstick_rows(run: Run) -> list[Row]:
    rows = []
    if run.known("y3") is not None:
        rows += arq_jobs.rows(run)
    if run.known("y1_aiohttp") is not None or run.known("y1_httpx") is not None:
        rows += [r for r in y1_clients.rows(run)]
    if run.known("y2") is not None:
        rows += y2_ingest.rows(run)
    if run.known("y4") is not None:
        rows += y4_ingest.rows(run)
    for row in rows:
        row.section = "yardsticks"
    return rows


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").split("\n")[0]
    )
    names = ["all", *SECTIONS]
    parser.add_argument(
        "what",
        nargs="*",
        metavar="SECTION",
        help=f"sections to run, of {', '.join(names)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts: a few minutes instead of ~20"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="workers for W3, W4 and W5 (W1 runs 1 and 2)"
    )
    parser.add_argument(
        "--soak",
        type=int,
        default=None,
        help="W5 deliveries (default 200,000; 20,000 with --quick), and w5-purge's "
        "(default 1,000,000; 40,000 with --quick)",
    )
    parser.add_argument(
        "--soak-rate",
        type=float,
        default=None,
        help="W5 events/s (default 60%% of W1's capacity / 10)",
    )
    parser.add_argument(
        "--receiver",
        choices=["nginx", "aiohttp"],
        default="nginx",
        help="aiohttp: the fallback receiver, also used when nginx is missing",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the run directory (process logs) afterwards"
    )
    args = parser.parse_args()
    unknown = set(args.what) - set(names)
    if unknown:
        parser.error(
            f"unknown section {', '.join(sorted(unknown))}: choose from {', '.join(names)}"
        )
    everything = not args.what or "all" in args.what
    chosen = [s for s in SECTIONS if s in args.what or (everything and s not in NOT_IN_ALL)]
    sizes = QUICK if args.quick else Sizes()
    if args.soak is not None:
        sizes = Sizes(
            **{**asdict(sizes), "soak_deliveries": args.soak, "long_soak_deliveries": args.soak}
        )

    for url, port, what in ((PG_URL, 5432, "PostgreSQL"), (REDIS_URL, 6379, "Redis")):
        if not _reachable(url, port):
            raise SystemExit(f"{what} does not answer at {url}")

    signal.signal(signal.SIGTERM, _interrupt)
    run_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    keep = args.keep_logs
    interrupted = False
    started = time.monotonic()
    run: Run | None = None
    try:
        receiver = start_receiver(run_dir, args.receiver)
        if receiver.kind != "nginx":
            print(
                "!!! nginx is not available (apt-get install nginx-light): the receiver is "
                "the aiohttp fallback, 5-10x slower than nginx; receiver-bound figures "
                "may be understated."
            )
        run = Run(sizes, run_dir, receiver, workers=args.workers, soak_rate=args.soak_rate)
        print(
            f"bench: {', '.join(chosen)}; {'quick' if args.quick else 'full'} sizes; "
            f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; receiver "
            f"{receiver.kind} at {receiver.base}; logs in {run_dir}"
        )
        for name in chosen:
            title, measure = SECTIONS[name]
            print(f"\n== {title} ==")
            section_start, others = time.monotonic(), procs.cpu_by_process()
            try:
                receiver.proc.check_alive()
                run.add(name, measure(run))
            except Exception as exc:
                keep = True
                traceback.print_exc()
                run.add(
                    name,
                    [Row(f"{title}: failed ({type(exc).__name__}: {exc})"[:150], None, void=True)],
                )
            procs.stop_all(keep=[receiver.proc])  # anything a failed section left behind
            seconds = time.monotonic() - section_start
            # The machine may be shared (a test suite, say): say how much it was.
            foreign = procs.foreign_cpu(others, procs.cpu_by_process()) / seconds
            run.details.setdefault("sections", {})[name] = {
                "seconds": round(seconds, 1),
                "other_processes_cores": round(foreign, 2),
            }
            if foreign > BUSY_CORES:
                run.shared.append(f"{name} {foreign:.1f}")
                print(
                    f"!!! other processes used {foreign:.2f} cores on average during {name}: "
                    "its figures are lower than on a quiet machine"
                )
    except KeyboardInterrupt:
        interrupted = True
        keep = True
        print("\ninterrupted: stopping everything")
    finally:
        procs.stop_all()
    if run is not None:
        rows = _yardstick_rows(run) + run.rows
        minutes = (time.monotonic() - started) / 60
        title = (
            f"Gateway benchmark ({'quick' if args.quick else 'full'}, "
            f"{os.cpu_count()} cores, receiver {run.receiver.kind}, {minutes:.1f} min"
            + (", INTERRUPTED" if interrupted else "")
            + ")"
        )
        if run.shared:
            title += "\nshared machine: other processes used (cores) during " + ", ".join(
                run.shared
            )
        report.print_table(rows, title)
        path = report.save(
            rows,
            {
                "sections": chosen,
                "quick": args.quick,
                "workers": args.workers,
                "sizes": asdict(sizes),
                "soak_rate": args.soak_rate,
                "receiver": run.receiver.kind,
            },
            {"interrupted": interrupted, "minutes": round(minutes, 2), "details": run.details},
        )
        print(f"results written to {path}")
    if keep:
        print(f"process logs kept in {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    if interrupted:
        raise SystemExit(130)


if __name__ == "__main__":
    main()
