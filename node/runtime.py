"""The running node's context, shared by the HTTP API, the web app and federation.

It sits below those interfaces and above the services, so the app factory (app.py) can
register every interface's routes while each handler takes its context from here: no
interface imports another, and none imports the factory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from protocol import Identity

from .config import Config
from .services.tokens import Principal, check_token
from .store.writer import Store


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("aidmesh_http_requests", "HTTP requests served",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("aidmesh_http_request_seconds", "HTTP request latency",
                                 ["route"], registry=self.registry)
        self.entries = Counter("aidmesh_entries_stored", "Entries appended to the store",
                               ["origin"], registry=self.registry)
        self.rate_limited = Counter("aidmesh_rate_limited", "Client API requests refused "
                                    "with 429", ["scope"], registry=self.registry)


@dataclass
class TokenCache:
    """Checked tokens, so each request does not cost a database read.

    Cleared on every revocation: through the API at once, through the CLI (another
    process) as soon as the store notices its commit (Store.on_foreign).
    """

    _entries: dict[str, Principal | None] = field(default_factory=dict)

    async def lookup(self, token: str, store: Store) -> Principal | None:
        if token in self._entries:
            return self._entries[token]
        principal = await store.read(lambda c: check_token(c, token))
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token] = principal
        return principal

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class Node:
    """Everything a request handler may need; one per app, no globals."""

    config: Config
    identity: Identity
    store: Store
    metrics: Metrics
    gossip: Any = None  # node.federation.gossip.Gossip, set once the store is open
    webhooks: Any = None  # node.workers.webhooks.Webhooks, set once the store is open
    peering: Any = None  # node.federation.invites.Peering: join(code) by invite code
    tokens: TokenCache = field(default_factory=TokenCache)
    started: float = field(default_factory=time.time)


NODE = web.AppKey("node", Node)
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)


def require(role: str | None) -> Callable[[Any], Any]:
    """Mark a handler with the least role it needs (None: no token needed)."""

    def mark(handler: Any) -> Any:
        handler.required_role = role
        return handler

    return mark
