"""Federation API (/federation/v1): what peers call. Signed requests only.

GET  /state   heads + fork proofs in this node's scope; ETag = state digest, so an
              in-sync round is one request answered 304 with no body.
POST /pull    {want: {author: after}} -> a stream of entry frames (<= 500 or 1 MiB).
POST /notify  "I have new entries": the caller is pulled from promptly.
POST /join    a node that is not a peer yet proves an invite's secret (invites.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from protocol import ProtocolError
from protocol.sync import (
    decode_want,
    state_digest,
)

from ..http.problems import Problem
from ..runtime import NODE, Node, require
from ..services import replication
from ..services.peer_invites import MAX_JOIN_BODY
from ..store import nonces
from .httpsig import (
    NONCE_TTL_S,
    SignatureProblem,
    claim_of,
    verify_body,
    verify_headers,
)
from .invites import add_routes as add_invite_routes
from .payloads import add_routes as add_payload_routes

PREFIX = "/federation/v1"
FRAMES_TYPE = "application/x-aidmesh-frames"
STATE_TYPE = "application/x-aidmesh-state"
MAX_PULL_BODY = 1024 * 1024
PEER_CONCURRENCY = 3
PULL_MAX_PAGES = 20  # one pull response streams at most this many pages
PEER_RATE = 10.0  # requests per second, sustained
PEER_BURST = 20.0
MAX_PACING_S = 1.0  # beyond this much queueing a peer gets 429
FAILURE_BURST = 20.0  # failed requests an address may make before its failures get 429
FAILURE_RATE = 1.0  # failures per second forgiven
MAX_ADDRESSES = 4096  # addresses whose failures are remembered (least recent forgotten)
JOIN_BURST = 10.0  # join requests an address may make at once (spec §14.6) ...
JOIN_RATE = 10 / 60  # ... and per second after that: ten a minute


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
class Failures:
    """Requests that failed authentication, counted per caller address (an IPv6 /64
    counts as one), never against the peer they claimed to be.

    Past FAILURE_BURST (refilled at FAILURE_RATE/s) an address's failures are answered
    429 with Retry-After instead of 401/403/408/413. A request from that address is still
    checked, never refused unread: an address can be shared (NAT, a reverse proxy, one
    host running several nodes), and refusing it wholesale would let anyone behind it lock
    a genuine peer out. Checking costs little, since nothing is read or stored for a
    request before its signature verifies.
    """

    cap: int = MAX_ADDRESSES
    burst: float = FAILURE_BURST
    rate: float = FAILURE_RATE
    _seen: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, stamp

    def charge(self, address: str, now: float) -> int | None:
        """Count one failure: None while within budget, else seconds to Retry-After."""
        tokens, stamp = self._seen.pop(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        over = tokens < 1
        if not over:
            tokens -= 1
        self._seen[address] = (tokens, now)  # re-inserted: the dict is in LRU order
        if len(self._seen) > self.cap:
            del self._seen[next(iter(self._seen))]
        return max(1, math.ceil((1 - tokens) / self.rate)) if over else None

    def __len__(self) -> int:
        return len(self._seen)


def address_key(remote: str | None) -> str:
    """A caller's address as counted by `Failures`: IPv4 as is, IPv6 by its /64 (one
    host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class FederationState:
    """Per-app inbound state: per-peer limits, failures per address, cached state."""

    buckets: dict[bytes, _Bucket] = field(default_factory=dict)  # verified callers only
    failures: Failures = field(default_factory=Failures)
    joins: Failures = field(default_factory=lambda: Failures(burst=JOIN_BURST, rate=JOIN_RATE))
    state: tuple[int, bytes, str] | None = None  # (store version, body, etag)


FED = web.AppKey("federation", FederationState)
CALLER = web.RequestKey("caller", bytes)  # the verified peer's public key
BODY = web.RequestKey("body", bytes)  # the body the signature's digest covered


def target_uri(request: web.Request, public_url: str) -> str:
    """`@target-uri` as the caller signed it (spec §14.4): the configured public base URL
    and the request target, else scheme, Host and target as this server received them."""
    if public_url:
        return public_url.rstrip("/") + str(request.rel_url)
    return str(request.url)


@web.middleware
async def signed_peers_only(request: web.Request, handler) -> web.StreamResponse:
    """Authenticate first, then charge: a request is charged to the peer it names only
    once its signature, body and nonce are checked; a failure is counted against the
    caller's address (spec 14.4 gives the order and the codes)."""
    if request.match_info.http_exception is not None:
        return await handler(request)
    node: Node = request.config_dict[NODE]
    fed = request.config_dict[FED]
    if getattr(request.match_info.handler, "strangers", False):
        return await _stranger(request, handler, node, fed)
    try:
        caller, body = await authenticate(request, node)
    except Problem as refusal:
        retry = fed.failures.charge(address_key(request.remote), time.monotonic())
        if retry is None:
            raise
        raise Problem(429, "too-many-failures", f"{refusal.detail} (too many failed "
                      "requests from this address: wait before sending more)",
                      headers={**refusal.headers, "Retry-After": str(retry)}) from None
    bucket = fed.buckets.setdefault(caller, _Bucket())
    wait = None if bucket.active >= PEER_CONCURRENCY else bucket.take(time.monotonic())
    if wait is None:
        raise Problem(429, "rate-limited", f"at most {PEER_CONCURRENCY} concurrent and "
                      f"{PEER_RATE:g} requests/s per peer", headers={"Retry-After": "1"})
    bucket.active += 1
    try:
        if wait:
            await asyncio.sleep(wait)  # soft limit: pace a busy peer instead of refusing
        request[CALLER] = caller
        request[BODY] = body
        node.gossip.record_inbound(caller, len(body))
        return await handler(request)
    finally:
        bucket.active -= 1


async def _stranger(request: web.Request, handler, node: Node, fed: FederationState
                    ) -> web.StreamResponse:
    """A route open to callers that are not peers yet (/join): each request is charged to
    its address before any work (spec §14.6), then authenticated like any other; no
    per-peer bucket is made for a key nobody trusts."""
    retry = fed.joins.charge(address_key(request.remote), time.monotonic())
    if retry is not None:
        raise Problem(429, "rate-limited", f"at most {JOIN_BURST:g} join requests a minute "
                      "from one address: wait before trying again",
                      headers={"Retry-After": str(retry)})
    try:
        caller, body = await authenticate(request, node, strangers=True)
    except Problem:
        fed.failures.charge(address_key(request.remote), time.monotonic())
        raise
    request[CALLER] = caller
    request[BODY] = body
    return await handler(request)


async def authenticate(request: web.Request, node: Node, *, strangers: bool = False
                       ) -> tuple[bytes, bytes]:
    """The verified caller and the body, or a Problem. Cheapest checks first: the keyid
    (403 before any cryptography), the signature over the headers (before the body is
    read), the body (under the body deadline and cap) against its digest, the nonce.
    ``strangers``: the keyid need not be a peer, and bodies are at most MAX_JOIN_BODY."""
    cap = MAX_JOIN_BODY if strangers else MAX_PULL_BODY
    try:
        claim = claim_of(request.headers)
        if not strangers and claim.caller not in node.gossip.trusted():
            raise Problem(403, "untrusted-caller", f"am{claim.caller.hex()} is not a peer of "
                          "this node; its admin must add it with 'aidmesh peer add', or "
                          "it can join with an invite code ('aidmesh peer invite')")
        if (request.content_length or 0) > cap:
            raise _too_large(cap)
        url = target_uri(request, node.config.public_url)
        results = verify_headers(claim, request.method, url, request.headers)
        body = await _read_body(request, node.config.body_timeout_s, cap)
        verify_body(results, request.headers, body)
    except SignatureProblem as exc:
        raise Problem(exc.status, exc.code, exc.detail) from None
    fresh = await node.store.write(lambda c: nonces.remember(
        c, claim.caller, claim.nonce, time.time(), NONCE_TTL_S))
    if not fresh:
        raise Problem(401, "replayed", "this request was already received (nonce seen "
                      "before); sign every request afresh")
    return claim.caller, body


async def _read_body(request: web.Request, deadline_s: float, cap: int = MAX_PULL_BODY
                     ) -> bytes:
    """The whole body, at most ``cap`` bytes, within ``deadline_s`` (413 / 408).

    Read with `request.read()`, so handlers that call it again get the same bytes."""
    try:
        async with asyncio.timeout(deadline_s):
            body = await request.read()  # stops at the app's client_max_size (>= 1 MiB)
    except TimeoutError:
        raise Problem(408, "body-timeout", f"the request body did not arrive within "
                      f"{deadline_s:g} s", headers={"Connection": "close"}) from None
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(cap) from None
    except (ConnectionError, HttpProcessingError):  # hung up or broke the framing
        raise Problem(400, "body-incomplete", "the connection ended before the whole "
                      "request body arrived", headers={"Connection": "close"}) from None
    if len(body) > cap:
        raise _too_large(cap)
    return body


def _too_large(cap: int = MAX_PULL_BODY) -> Problem:
    return Problem(413, "body-too-large", f"this federation request's body may be at most "
                   f"{cap} bytes")


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
    add_payload_routes(app)
    add_invite_routes(app)
    return app


