"""`make bench`: quick measurements of the gateway against yardsticks from the same run.

    python -m bench [outbound|inbound|all] [options]

Everything runs on loopback, on PostgreSQL + Redis; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from bench import arq_jobs, inbound, outbound

RESULTS = Path(__file__).with_name("results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", choices=["outbound", "inbound", "queue", "all"],
                        default="all")
    parser.add_argument("--events", type=int, default=2000, help="events to fan out")
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per event")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000, help="ingest requests")
    parser.add_argument("--concurrency", type=int, default=32, help="ingest clients")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this long")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    if args.what in ("queue", "all"):
        figures.update(arq_jobs.run())
    if args.what in ("outbound", "all"):
        figures.update(outbound.run(args.events, args.endpoints, args.workers, args.timeout))
    if args.what in ("inbound", "all"):
        figures.update(inbound.run(args.requests, args.concurrency))
    _save(vars(args), figures)


def _save(options: dict[str, object], figures: dict[str, float]) -> None:
    """bench/results/<time>.json: the figures, the options, the machine and the commit."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
    path.write_text(json.dumps({"commit": commit or None, "cores": os.cpu_count(),
                                "options": options, "figures": figures}, indent=2) + "\n")
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
