"""Offers and needs: /api/v1/offers and /api/v1/needs (create, list, read, change, erase)."""

from __future__ import annotations

from aiohttp import web

from protocol import ProtocolError
from protocol.identity import parse_entry_id

from ..runtime import NODE, require
from ..services import listings, moderation
from ..store.ledger import now_ms
from .problems import Problem
from .request import PREFIX, append, json_response, optional_json, read_json


def entry_id(request: web.Request) -> str:
    text = request.match_info["id"]
    try:
        parse_entry_id(text)
    except ProtocolError as exc:
        raise Problem(404, "not-found", exc.detail, field="id") from None
    return text


def listing_routes(kind: str) -> list[web.RouteDef]:
    plural = kind + "s"

    @require("coordinator")
    async def create(request: web.Request) -> web.Response:
        body = await read_json(request)
        item = await append(request.app[NODE],
                            lambda ledger, c: listings.post(ledger, c, kind, body))
        return json_response(item, status=201,
                             headers={"Location": f"{PREFIX}/{plural}/{item['id']}"})

    @require("reader")
    async def search(request: web.Request) -> web.Response:
        node = request.app[NODE]
        query = listings.parse_query(kind, request.query, node.config)
        now = now_ms()
        items, cursor = await node.store.read(lambda c: listings.search(c, query, now))
        return json_response({"items": items, "next_cursor": cursor})

    @require("reader")
    async def get_one(request: web.Request) -> web.Response:
        target, now = entry_id(request), now_ms()
        return json_response(await request.app[NODE].store.read(
            lambda c: listings.get(c, kind, target, now)))

    @require("coordinator")
    async def patch(request: web.Request) -> web.Response:
        target = entry_id(request)
        body = await read_json(request)
        return json_response(await append(
            request.app[NODE], lambda ledger, c: listings.update(ledger, c, kind, target, body)))

    @require("coordinator")
    async def delete(request: web.Request) -> web.Response:
        target = entry_id(request)
        return json_response(await append(
            request.app[NODE], lambda ledger, c: listings.withdraw(ledger, c, kind, target)))

    @require("coordinator")
    async def redact(request: web.Request) -> web.Response:
        target = entry_id(request)
        reason = moderation.reason_of(await optional_json(request))
        await append(request.app[NODE],
                     lambda ledger, c: listings.redact(ledger, c, kind, target, reason))
        return web.Response(status=204)

    return [
        web.post(f"{PREFIX}/{plural}", create),
        web.get(f"{PREFIX}/{plural}", search),
        web.get(f"{PREFIX}/{plural}/{{id}}", get_one),
        web.patch(f"{PREFIX}/{plural}/{{id}}", patch),
        web.delete(f"{PREFIX}/{plural}/{{id}}", delete),
        web.post(f"{PREFIX}/{plural}/{{id}}/redact", redact),
    ]


def add_routes(app: web.Application) -> None:
    app.add_routes([*listing_routes("offer"), *listing_routes("need")])
