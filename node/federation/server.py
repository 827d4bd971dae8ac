"""Federation API (/federation/v1): what peers call. Signed requests only.

GET  /state   heads + fork proofs in this node's scope; ETag = state digest, so an
              in-sync round is one request answered 304 with no body.
POST /pull    {want: {author: after}} -> a stream of entry frames (<= 500 or 1 MiB).
POST /notify  "I have new entries": the caller is pulled from promptly.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from protocol import ProtocolError
from protocol.sync import (
    decode_want,
    state_digest,
)

from ..http.problems import Problem
from ..runtime import NODE, Node, require
from ..services import replication
from .httpsig import NonceCache, SignatureProblem, caller_of, verify_request

PREFIX = "/federation/v1"
FRAMES_TYPE = "application/x-aidmesh-frames"
STATE_TYPE = "application/x-aidmesh-state"
MAX_PULL_BODY = 1024 * 1024
PEER_CONCURRENCY = 3
PULL_MAX_PAGES = 20  # one pull response streams at most this many pages
PEER_RATE = 10.0  # requests per second, sustained
PEER_BURST = 20.0
MAX_PACING_S = 1.0  # beyond this much queueing a peer gets 429


@dataclass
class _Bucket:
    tokens: float = PEER_BURST
    stamp: float = field(default_factory=time.monotonic)
    active: int = 0

    def take(self, now: float) -> float | None:
        """Seconds to wait before serving (soft limit), or None to refuse (hard limit)."""
        self.tokens = min(PEER_BURST, self.tokens + (now - self.stamp) * PEER_RATE)
        self.stamp = now
        wait = max(0.0, (1 - self.tokens) / PEER_RATE)
        if wait > MAX_PACING_S:
            return None
        self.tokens -= 1
        return wait


@dataclass
class FederationState:
    """Per-app inbound state: replay cache, per-peer limits, cached state message."""

    nonces: NonceCache = field(default_factory=NonceCache)
    buckets: dict[bytes, _Bucket] = field(default_factory=dict)
    state: tuple[int, bytes, str] | None = None  # (store version, body, etag)


FED = web.AppKey("federation", FederationState)
CALLER = web.RequestKey("caller", bytes)  # the verified peer's public key
BODY = web.RequestKey("body", bytes)  # the body the signature's digest covered


@web.middleware
async def signed_peers_only(request: web.Request, handler) -> web.StreamResponse:
    """403 for unknown callers before any crypto; 429 past per-peer limits; 401 bad sigs."""
    if request.match_info.http_exception is not None:
        return await handler(request)
    node: Node = request.config_dict[NODE]
    fed = request.config_dict[FED]
    try:
        caller = caller_of(request.headers)
    except SignatureProblem as exc:
        raise Problem(exc.status, exc.code, exc.detail) from None
    if caller not in node.gossip.trusted():
        raise Problem(403, "untrusted-caller", f"am{caller.hex()} is not a peer of this node; "
                      "its admin must add it with 'aidmesh peer add'")
    bucket = fed.buckets.setdefault(caller, _Bucket())
    wait = None if bucket.active >= PEER_CONCURRENCY else bucket.take(time.monotonic())
    if wait is None:
        raise Problem(429, "rate-limited", f"at most {PEER_CONCURRENCY} concurrent and "
                      f"{PEER_RATE:g} requests/s per peer", headers={"Retry-After": "1"})
    bucket.active += 1
    try:
        if wait:
            await asyncio.sleep(wait)  # soft limit: pace a busy peer instead of refusing
        if request.content_length is not None and request.content_length > MAX_PULL_BODY:
            raise Problem(413, "body-too-large", f"federation bodies are at most "
                          f"{MAX_PULL_BODY} bytes")
        body = await request.read()
        if len(body) > MAX_PULL_BODY:
            raise Problem(413, "body-too-large", f"federation bodies are at most "
                          f"{MAX_PULL_BODY} bytes")
        try:
            verify_request(caller, request.method, str(request.url), request.headers, body,
                           fed.nonces)
        except SignatureProblem as exc:
            raise Problem(exc.status, exc.code, exc.detail) from None
        request[CALLER] = caller
        request[BODY] = body
        node.gossip.record_inbound(caller, len(body))
        return await handler(request)
    finally:
        bucket.active -= 1


@require(None)
async def get_state(request: web.Request) -> web.Response:
    node: Node = request.config_dict[NODE]
    fed = request.config_dict[FED]
    version = node.store.version
    if fed.state is None or fed.state[0] != version:
        me, hops = node.identity.public, node.config.hops
        body = await node.store.read(lambda c: replication.served_state(c, me, hops))
        fed.state = (version, body, '"' + state_digest(body).hex() + '"')
    _, body, etag = fed.state
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type=STATE_TYPE, headers={"ETag": etag})


@require(None)
async def pull(request: web.Request) -> web.StreamResponse:
    """Stream up to PULL_MAX_PAGES pages of frames for the wanted authors in our scope."""
    node: Node = request.config_dict[NODE]
    try:
        want = decode_want(request[BODY])
    except ProtocolError as exc:
        raise Problem(400, exc.code, exc.detail) from None

    me, hops = node.identity.public, node.config.hops
    cursor = await node.store.read(lambda c: replication.plan_pull(c, me, hops, want))
    response = web.StreamResponse(headers={"Content-Type": FRAMES_TYPE})
    sent = 0
    try:
        await response.prepare(request)
        for _ in range(PULL_MAX_PAGES):
            page, count = await node.store.read(lambda c: replication.next_page(c, cursor))
            if not count:
                break
            await response.write(page)
            sent += len(page)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the peer hung up mid-stream (stopped, timed out, had enough): not our error
    node.gossip.record_outbound(request[CALLER], sent)
    return response


@require(None)
async def notify(request: web.Request) -> web.Response:
    node: Node = request.config_dict[NODE]
    node.gossip.poke(request[CALLER])
    return web.Response(status=202)


def federation_app() -> web.Application:
    app = web.Application(middlewares=[signed_peers_only], client_max_size=MAX_PULL_BODY)
    app[FED] = FederationState()
    app.add_routes([
        web.get("/state", get_state),
        web.post("/pull", pull),
        web.post("/notify", notify),
    ])
    return app


