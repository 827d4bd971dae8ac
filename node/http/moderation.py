"""Local moderation in the client API: blocks, hide / erase of any entry (admins)."""

from __future__ import annotations

from aiohttp import web

from ..runtime import NODE, require
from ..services import moderation
from ..store.ledger import now_ms
from .request import PREFIX, json_response, read_json


@require("admin")
async def add_block(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body, now = await read_json(request), now_ms()
    out = await node.store.write(lambda c: moderation.block(node.store.ledger, c, body, now))
    node.store.version += 1  # the served state (heads in scope) changed
    node.gossip.resync()
    return json_response(out, status=201)


@require("admin")
async def list_blocks(request: web.Request) -> web.Response:
    return json_response({"blocks": await request.app[NODE].store.read(moderation.blocks)})


@require("admin")
async def remove_block(request: web.Request) -> web.Response:
    node = request.app[NODE]
    author = request.match_info["author"]
    await node.store.write(lambda c: moderation.unblock(c, author))
    node.store.version += 1
    node.gossip.resync()
    return web.Response(status=204)


@require("admin")
async def moderate(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body, now = await read_json(request), now_ms()
    return json_response(await node.store.write(lambda c: moderation.moderate(c, body, now)),
                         status=201)


@require("admin")
async def list_moderation(request: web.Request) -> web.Response:
    return json_response({"moderation": await request.app[NODE].store.read(
        moderation.decisions)})


@require("admin")
async def unhide(request: web.Request) -> web.Response:
    entry_id = request.match_info["id"]
    await request.app[NODE].store.write(lambda c: moderation.unhide(c, entry_id))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.post(f"{PREFIX}/blocks", add_block),
        web.get(f"{PREFIX}/blocks", list_blocks),
        web.delete(f"{PREFIX}/blocks/{{author}}", remove_block),
        web.post(f"{PREFIX}/moderation", moderate),
        web.get(f"{PREFIX}/moderation", list_moderation),
        web.delete(f"{PREFIX}/moderation/{{id}}", unhide),
    ])
