"""Admin resources: API tokens and trusted peers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocol import parse_node_id

from ..runtime import NODE, Node, require
from ..services import peers, tokens
from ..services.values import json_object
from ..store.ledger import now_ms
from .request import PREFIX, append, json_response, read_json


@require("admin")
async def create_token(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = json_object(await read_json(request), ("name", "role"))
    role, name = body.get("role"), body.get("name", "api")
    token_id, token = await node.store.write(
        lambda c: tokens.create_token(c, role, name, now_ms()))  # type: ignore[arg-type]
    return json_response({"id": token_id, "name": name, "role": role, "token": token},
                         status=201)


@require("admin")
async def list_tokens(request: web.Request) -> web.Response:
    return json_response({"tokens": await request.app[NODE].store.read(tokens.list_tokens)})


@require("admin")
async def revoke_token(request: web.Request) -> web.Response:
    node = request.app[NODE]
    token_id = request.match_info["id"]
    await node.store.write(lambda c: tokens.revoke_token(c, token_id, now_ms()))
    node.tokens.clear()
    return web.Response(status=204)


def _live(node: Node, peer: dict[str, Any]) -> dict[str, Any]:
    """Prefer the gossip loop's in-memory figures: fresher than the saved ones."""
    link = node.gossip.links.get(parse_node_id(peer["id"])) if node.gossip else None
    return peers.as_json(peer, link.as_json() if link is not None else None)


@require("reader")
async def list_peers(request: web.Request) -> web.Response:
    node = request.app[NODE]
    rows = await node.store.read(
        lambda c: peers.rows(c, node.identity.public, node.config.hops))
    return json_response({"peers": [_live(node, p) for p in rows]})


@require("admin")
async def add_peer(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = json_object(await read_json(request), ("id", "url"))
    await append(node, lambda ledger, c: peers.add(ledger, c, body.get("id"), body.get("url")))
    await node.gossip.refresh()
    rows = await node.store.read(
        lambda c: peers.rows(c, node.identity.public, node.config.hops))
    peer_id = "am" + parse_node_id(body["id"]).hex()
    out = next(p for p in rows if p["id"] == peer_id)
    return json_response(_live(node, out), status=201,
                         headers={"Location": f"{PREFIX}/peers/{peer_id}"})


@require("admin")
async def remove_peer(request: web.Request) -> web.Response:
    node = request.app[NODE]
    peer_id = request.match_info["id"]
    await append(node, lambda ledger, c: peers.remove(ledger, c, peer_id))
    await node.gossip.refresh()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get(f"{PREFIX}/peers", list_peers),
        web.post(f"{PREFIX}/peers", add_peer),
        web.delete(f"{PREFIX}/peers/{{id}}", remove_peer),
        web.post(f"{PREFIX}/tokens", create_token),
        web.get(f"{PREFIX}/tokens", list_tokens),
        web.delete(f"{PREFIX}/tokens/{{id}}", revoke_token),
    ])
