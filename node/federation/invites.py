"""Peering by invite code over the wire (spec §14.6): both sides of the join handshake.

POST /federation/v1/join is the one federation endpoint a caller that is not yet a peer
may use: the signature middleware (server.py) still checks its RFC 9421 signature, body
and nonce, but instead of trust it charges the caller's address (a few joins a minute),
and this handler lets it in only if it proves the invite's secret. `join` is the
joiner's side, shared by the web app (through `Peering`, set on the running Node by
app.py) and `aidmesh peer join` (the CLI process, writing through its own transaction:
the running node notices the commit and starts syncing).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from protocol import Identity, ProtocolError, node_id

from ..config import Config
from ..http.problems import Problem
from ..outbound import Client
from ..runtime import NODE, Node, require
from ..services import peer_invites, peers
from ..services.errors import Conflict, Forbidden, Invalid, TooMany
from ..store.ledger import Ledger, now_ms
from .httpsig import MAX_SKEW_S, caller_of, sign_request
from .link import describe

T = TypeVar("T")
Write = Callable[[Callable[[Ledger, sqlite3.Connection], T]], Awaitable[T]]
JOIN_TYPE = "application/x-aidmesh"
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5, sock_read=10)
ERROR_BODY_MAX = 2048
# What the inviter answered, as the joiner reports it: refusals of the code itself.
REFUSED = {"invite-unknown": Forbidden, "bad-invite-proof": Forbidden,
           "invite-expired": Forbidden, "invite-used": Conflict, "invite-own": Forbidden}


# -- the inviter's side ---------------------------------------------------------------------


@require(None)
async def join_endpoint(request: web.Request) -> web.Response:
    """A stranger that proves an invite's secret becomes a peer (authenticated already)."""
    node: Node = request.config_dict[NODE]
    try:
        req = peer_invites.decode_join_request(await request.read())  # cached by the middleware
    except ProtocolError as exc:
        raise Problem(400, exc.code, exc.detail) from None
    joiner = caller_of(request.headers)
    added = await node.store.write(
        lambda c: peer_invites.accept(c, node.store.ledger, joiner, req, now_ms()))
    if added:
        node.metrics.entries.labels("local").inc()
        await node.gossip.refresh()  # start syncing now, not at the next poll
    body = peer_invites.encode_answer(node.identity.public, node.config.name,
                                      node.config.public_url, added)
    return web.Response(body=body, content_type=JOIN_TYPE)


join_endpoint.strangers = True  # type: ignore[attr-defined]  # read by server.py


def add_routes(app: web.Application) -> None:
    """Called by server.federation_app()."""
    app.add_routes([web.post("/join", join_endpoint)])


# -- the joiner's side ----------------------------------------------------------------------


def own_url(config: Config) -> str:
    """Where the inviter will call us: public_url, required to join."""
    if not config.public_url:
        raise Conflict("no-public-url", "set public_url in aidmesh.toml (or "
                       "AIDMESH_PUBLIC_URL) to the base URL other nodes reach this one at, "
                       "then join again: the inviting node needs it to sync with you")
    try:
        return peers.check_url(config.public_url)
    except Invalid as exc:
        raise Conflict("no-public-url", f"public_url is not usable: {exc.detail}") from None


async def join(code: str, *, identity: Identity, config: Config, write: Write[bool]
               ) -> dict[str, Any]:
    """Join the network of the node that made ``code`` (or its link): one signed request,
    then our own trust entry for it. Returns {id, name, url} of the new peer."""
    invite = peer_invites.parse(code)
    if invite.node == identity.public:
        raise Invalid("invite-own", "this is this node's own invite: give it to the other "
                      "group's admin, or paste the code their node made", field="code")
    url = own_url(config)
    if (invite.expires + MAX_SKEW_S) * 1000 < now_ms():  # the inviter's clock decides
        raise Forbidden("invite-refused", "this invite has expired; ask the other group's "
                        "admin for a new code", reason="invite-expired")
    nonce = secrets.token_bytes(16)
    body = peer_invites.encode_join_request(peer_invites.JoinRequest(
        invite.id, nonce, peer_invites.proof(invite.key, invite.node, identity.public,
                                             nonce, url), url))
    status, raw, retry = await _post(config, identity, invite.url, body)
    if status != 200:
        raise _refusal(status, raw, invite.url, retry)
    try:
        answer = peer_invites.decode_answer(raw)
    except ProtocolError as exc:
        raise Conflict("peer-unreachable", f"the node at {invite.url} gave an answer this "
                       f"node cannot read: {exc.detail}") from None
    if answer["node"] != invite.node:
        raise Conflict("peer-unreachable", f"the node answering at {invite.url} is not the "
                       "one that made this invite; check the code with its admin")
    added = await write(lambda ledger, c: peer_invites.trust_inviter(
        c, ledger, invite.node, invite.url))
    peer = {"id": node_id(invite.node), "name": answer["name"] or None, "url": invite.url}
    if not added and not answer["added"]:
        raise Conflict("already-peered", f"this node already peers with "
                       f"{answer['name'] or peer['id']} at {invite.url}; nothing changed",
                       **peer)
    return peer


async def _post(config: Config, identity: Identity, base: str, body: bytes
                ) -> tuple[int, bytes, str]:
    target = base.rstrip("/") + "/federation/v1/join"
    headers = sign_request(identity, "POST", target, body)
    headers["Content-Type"] = JOIN_TYPE
    client = Client(config, webhooks=False, timeout=TIMEOUT)
    try:
        async with client.request("POST", target, data=body, headers=headers) as resp:
            return (resp.status, await resp.content.read(ERROR_BODY_MAX),
                    resp.headers.get("Retry-After", ""))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise Conflict("peer-unreachable", f"could not reach the inviting node at {base} "
                       f"({describe(exc)}); check that it runs and that this machine can "
                       "reach that URL") from None
    finally:
        await client.close()


def _refusal(status: int, raw: bytes, base: str, retry: str) -> Exception:
    """The inviter's problem answer as the typed error the joiner reports."""
    problem: dict[str, Any] = {}
    with contextlib.suppress(ValueError, UnicodeError):
        loaded = json.loads(raw.decode())
        problem = loaded if isinstance(loaded, dict) else {}
    reason = str(problem.get("type", "")).removeprefix("urn:aidmesh:problem:")
    detail = " ".join(str(problem.get("detail") or f"HTTP {status}").split())[:300]
    if reason in REFUSED:
        return REFUSED[reason]("invite-refused", f"the inviting node refused the code: "
                               f"{detail}", reason=reason)
    if status == 429:
        return TooMany("rate-limited", f"the inviting node asks to wait: {detail}",
                       retry_after=int(retry) if retry.isdigit() else 60)
    if status in (404, 405):
        return Conflict("peer-unreachable", f"{base} does not take invite codes (not an "
                        "aidmesh node, or an older version); check the code")
    if 400 <= status < 500:
        return Conflict("invite-refused", f"the inviting node refused the request: {detail}",
                        reason=reason or str(status))
    return Conflict("peer-unreachable", f"the inviting node at {base} failed: {detail}")


class Peering:
    """The running node's side of joining (set as Node.peering by app.py)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def join(self, code: str) -> dict[str, Any]:
        node = self.node

        async def write(fn: Callable[[Ledger, sqlite3.Connection], bool]) -> bool:
            return await node.store.write(lambda c: fn(node.store.ledger, c))

        peer = await join(code, identity=node.identity, config=node.config, write=write)
        await node.gossip.refresh()  # start syncing now, not at the next poll
        return peer
