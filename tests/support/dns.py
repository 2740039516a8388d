"""A DNS server on 127.0.0.1 whose answers the tests script, to play DNS rebinding.

Every host name the gateway resolves in the tests is answered here (it runs with
GATEWAY_DNS_SERVERS pointing at it), so nothing is ever looked up outside.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from dnslib import AAAA, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer


class ScriptedResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, list[list[str]]] = {}
        self.queries: dict[str, int] = {}

    def script(self, name: str, *answer_sets: list[str]) -> None:
        """Answer `name` with each address list in turn, the last one from then on."""
        with self._lock:
            self._answers[name.rstrip(".").lower()] = [list(a) for a in answer_sets]

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            sets = self._answers.get(qname)
            if sets is None:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            # One step per lookup, counted on the A question (aiohttp asks A and AAAA).
            if qtype == "A":
                self.queries[qname] = self.queries.get(qname, 0) + 1
            step = max(0, self.queries.get(qname, 1) - 1)
            answers = sets[min(step, len(sets) - 1)]
        for address in answers:
            ip = ipaddress.ip_address(address)
            if ip.version == 4 and qtype == "A":
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=0))
            elif ip.version == 6 and qtype == "AAAA":
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(ip.exploded), ttl=0))
        return reply


class QuietLogger:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class ScriptedDNS:
    def __init__(self) -> None:
        self.resolver = ScriptedResolver()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._server = DNSServer(
            self.resolver, address="127.0.0.1", port=self.port, logger=QuietLogger()
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start_thread()

    def stop(self) -> None:
        self._server.stop()
