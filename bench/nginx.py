"""The receiver the gateway delivers to: nginx from Debian's packages, answering 204.

nginx answers a small POST in some microseconds, a hundred times faster than any
Python sender (wrk: ~110,000 requests/s on this machine), so the receiver is never
what is measured. Its access log is the benchmark's ground truth: one line per
request it answered, with the arrival time, the `webhook-id` header (the event id)
and the URI (which endpoint), so counts, latencies and duplicates come from what
actually arrived, not from what the gateway says it sent.

It runs as a plain child process (`daemon off; master_process off`) with every
path inside the run's temporary directory, so it needs no root, touches nothing
in /etc/nginx and stops with the bench.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.procs import Proc

NGINX = "/usr/sbin/nginx"
# `$msec`: time the request was answered, in seconds with millisecond resolution.
LOG_FORMAT = "$msec $http_webhook_id $request_uri $status"


def available() -> bool:
    return Path(NGINX).exists() or shutil.which("nginx") is not None


def config(workdir: Path, port: int) -> str:
    w = workdir
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    log_format bench '{LOG_FORMAT}';
    access_log off;
    # One connection carries a whole run: no reconnects forced on the senders.
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /healthz {{ return 200 "ok"; }}
        location / {{
            # Buffered, and flushed every 10 ms: cheap, and counts are at most 10 ms late.
            access_log {w}/access.log bench buffer=64k flush=10ms;
            return 204;
        }}
    }}
}}
"""


def start(workdir: Path, port: int) -> tuple[Proc, Path]:
    """Start nginx on 127.0.0.1:port; returns the process and its access log."""
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / sub).mkdir(exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(config(workdir, port))
    binary = NGINX if Path(NGINX).exists() else shutil.which("nginx") or NGINX
    # -e: the error log from the very start (else nginx first opens /var/log/nginx/error.log).
    proc = Proc(
        "nginx",
        [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "nginx-error.log")],
        log_dir=workdir,
    )
    return proc, workdir / "access.log"
