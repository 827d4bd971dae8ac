"""The listening socket: the node faces the internet alone, so the edge protects itself.

- Complete request headers must arrive within `header_timeout_s` of connecting or of the
  previous response (aiohttp's keep-alive timer runs from the connection's start and
  closes a connection that has not delivered a whole request by then: a client sending
  its headers a byte at a time is cut off), which is also the idle keep-alive timeout.
- Request bodies are read under a deadline by whoever reads them (http/request.py,
  federation/server.py); what a client still sends after an early answer is drained for
  at most LINGER_S.
- At most `max_connections` connections in all and `max_connections_per_address` from one
  address; beyond that a connection gets a short 503 / 429 answer and is closed at once,
  so a flood from one address cannot starve the others or the node's file descriptors.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .config import Config

LINGER_S = 2.0


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 5.0
    max_connections: int = 768
    max_connections_per_address: int = 64

    @classmethod
    def of(cls, config: Config) -> Limits:
        return cls(config.header_timeout_s, config.max_connections,
                   config.max_connections_per_address)


def _refusal(status: int, reason: str, code: str, detail: str) -> bytes:
    body = json.dumps({"type": f"urn:aidmesh:problem:{code}", "title": reason,
                       "status": status, "detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
            f"Retry-After: 5\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


BUSY = _refusal(503, "Service Unavailable", "too-many-connections",
                "the node has as many connections as it serves at once; retry shortly")
CROWDED = _refusal(429, "Too Many Requests", "too-many-connections",
                   "too many connections from your address; close some and retry")


class ConnectionGuard:
    """Wraps aiohttp's protocol factory; counts live connections per address."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limits: Limits) -> None:
        self.factory = factory
        self.limits = limits
        self.total = 0
        self.by_address: dict[str, int] = {}
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def admit(self, address: str) -> bytes | None:
        """None to admit (and count) the connection, else the answer that refuses it."""
        if self.total >= self.limits.max_connections:
            self.refused += 1
            return BUSY
        if self.by_address.get(address, 0) >= self.limits.max_connections_per_address:
            self.refused += 1
            return CROWDED
        self.total += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]


class _Guarded(asyncio.Protocol):
    """Admits or refuses one connection, then hands every event to aiohttp's handler."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "unknown"
        refusal = self.guard.admit(self.address)
        if refusal is not None:
            assert isinstance(transport, asyncio.Transport)
            transport.write(refusal)
            transport.close()
            return
        self.inner = self.guard.factory()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.inner is not None:
            self.guard.release(self.address)
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCP site whose connections pass the guard first."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: Limits) -> None:
        super().__init__(runner, host, port, backlog=1024)
        self.limits = limits
        self.guard: ConnectionGuard | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self.guard = ConnectionGuard(server, self.limits)
        self._server = await asyncio.get_running_loop().create_server(
            self.guard, self._host, self._port, backlog=self._backlog)
        self._bound_port = self._server.sockets[0].getsockname()[1]


async def serve(app: web.Application, host: str, port: int, limits: Limits,
                ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    # lingering_time: after an early answer (401, 408, 413) the unread rest of a body is
    # drained this long, so the client sees the answer, then the connection is closed.
    runner = web.AppRunner(app, keepalive_timeout=limits.header_timeout_s,
                           lingering_time=LINGER_S, access_log=None)
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, limits).start()
        if ready is not None:
            ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
