"""`make bench`: quick measurements of the gateway against yardsticks from the same run.

    python -m bench [outbound|inbound|all] [options]

Everything runs on loopback, on PostgreSQL + Redis; every loop is bounded.
"""

from __future__ import annotations

import argparse

from bench import inbound, outbound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", choices=["outbound", "inbound", "all"], default="all")
    parser.add_argument("--events", type=int, default=2000, help="events to fan out")
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per event")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000, help="ingest requests")
    parser.add_argument("--concurrency", type=int, default=32, help="ingest clients")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this long")
    args = parser.parse_args()
    if args.what in ("outbound", "all"):
        outbound.run(args.events, args.endpoints, args.workers, args.timeout)
    if args.what in ("inbound", "all"):
        inbound.run(args.requests, args.concurrency)


if __name__ == "__main__":
    main()
