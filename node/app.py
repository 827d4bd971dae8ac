"""The aiohttp application factory and the node's runtime context."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from protocol import Identity

from . import __version__
from .auth import ANONYMOUS_READER, Principal, check_token
from .config import Config
from .problems import Problem, from_http_exception, problem_response
from .store import Ledger, Store

log = logging.getLogger("aidmesh")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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


@dataclass
class TokenCache:
    """Checked tokens for a few seconds, so each request does not cost a database read.

    Revocation through the API clears it at once; through the CLI (another process) it
    takes effect within TTL_S.
    """

    TTL_S = 10.0
    _entries: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)

    async def lookup(self, token: str, store: Store) -> Principal | None:
        now = time.monotonic()
        hit = self._entries.get(token)
        if hit and hit[0] > now:
            return hit[1]
        principal = await store.read(lambda c: check_token(c, token))
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token] = (now + self.TTL_S, principal)
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
    gossip: Any = None  # node.gossip.Gossip, set once the store is open
    webhooks: Any = None  # node.webhooks.Webhooks, set once the store is open
    tokens: TokenCache = field(default_factory=TokenCache)
    started: float = field(default_factory=time.time)


NODE = web.AppKey("node", Node)
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)


def require(role: str | None):
    """Mark a handler with the least role it needs (None: no token needed)."""

    def mark(handler):
        handler.required_role = role
        return handler

    return mark


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Request id, structured access log, metrics, and problem+json for every error."""
    node = request.app[NODE]
    rid = request.headers.get("X-Request-Id", "")
    if not _REQUEST_ID_RE.match(rid):
        rid = secrets.token_hex(8)
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource \
        else "unmatched"
    try:
        response = await handler(request)
    except Problem as problem:
        response = problem_response(problem, request.path, rid)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem_response(from_http_exception(exc), request.path, rid)
    except Exception:
        log.exception(json.dumps({"event": "error", "request_id": rid, "path": request.path}))
        response = problem_response(
            Problem(500, "internal", "the node hit an unexpected error; the operator can "
                    f"find request id {rid} in its log"), request.path, rid)
    response.headers["X-Request-Id"] = rid
    elapsed = time.perf_counter() - started
    node.metrics.requests.labels(request.method, route, str(response.status)).inc()
    node.metrics.latency.labels(route).observe(elapsed)
    log.info(json.dumps({"event": "request", "request_id": rid, "method": request.method,
                         "path": request.path, "status": response.status,
                         "ms": round(elapsed * 1000, 2)}))
    return response


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    """Bearer tokens by role; decided before the handler does any work."""
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404/405 problems, not a demand for a token
    role = getattr(request.match_info.handler, "required_role", "admin")
    if role is None:
        return await handler(request)
    node = request.app[NODE]
    principal = await principal_of(request, node)
    if principal is None:
        raise Problem(401, "unauthorized", "send 'Authorization: Bearer <token>'; create a "
                      "token with 'aidmesh token create --role reader'",
                      headers={"WWW-Authenticate": 'Bearer realm="aidmesh"'})
    if not principal.allows(role):
        raise Problem(403, "forbidden", f"this needs the {role} role; the token has "
                      f"{principal.role}")
    request[PRINCIPAL] = principal
    return await handler(request)


async def principal_of(request: web.Request, node: Node) -> Principal | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await node.tokens.lookup(token.strip(), node.store)
    if node.config.open_read and request.method in ("GET", "HEAD"):
        return ANONYMOUS_READER
    return None


def create_app(config: Config, identity: Identity) -> web.Application:
    """Build the node's app; the store opens on startup and closes on cleanup."""
    from . import api, events_api, exchange_api, moderation
    from .federation import MAX_PULL_BODY, federation_app
    from .gossip import Gossip
    from .moderation import Retention
    from .webhooks import Webhooks

    # The client API enforces config.max_body_bytes itself; federation pulls may be 1 MiB.
    app = web.Application(client_max_size=max(config.max_body_bytes, MAX_PULL_BODY),
                          middlewares=[request_context, authenticate])

    async def open_node(app: web.Application) -> Any:
        config.home.mkdir(parents=True, exist_ok=True)
        store = Store(Ledger(config.db_path, identity))
        await store.start()
        node = Node(config=config, identity=identity, store=store, metrics=Metrics())
        node.gossip = Gossip(node)
        app[NODE] = node
        retention = Retention(node)
        await node.gossip.start()
        node.webhooks = Webhooks(node)
        await node.webhooks.start()
        await retention.start()
        yield
        await node.webhooks.stop()
        await retention.stop()
        await node.gossip.stop()
        await store.close()

    app.cleanup_ctx.append(open_node)
    for routes in (api, exchange_api, moderation, events_api):
        routes.add_routes(app)
    app.add_subapp("/federation/v1", federation_app())
    return app


__all__ = ["NODE", "Node", "create_app", "require", "__version__"]
