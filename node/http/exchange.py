"""Exchanges in the client API: claims, accept / decline / fulfil, and matches."""

from __future__ import annotations

from aiohttp import web

from ..runtime import NODE, PRINCIPAL, require
from ..services import claims, matches
from ..store.ledger import now_ms
from .request import PREFIX, append, json_response, optional_json, page_limit, read_json


def _show_private(request: web.Request) -> bool:
    principal = request.get(PRINCIPAL)
    return principal is not None and principal.role in claims.PRIVILEGED


async def _claim_response(request: web.Request, claim_id: str, status_code: int = 200
                          ) -> web.Response:
    node = request.app[NODE]
    show = _show_private(request)
    body = await node.store.read(
        lambda c: claims.get_claim(c, node.store.ledger, claim_id, show))
    headers = {"Location": f"{PREFIX}/claims/{claim_id}"} if status_code == 201 else None
    return json_response(body, status=status_code, headers=headers)


def claim_route(kind: str) -> web.RouteDef:
    @require("coordinator")
    async def create(request: web.Request) -> web.Response:
        listing_id = claims.parse_entry(request.match_info["id"])
        body = claims.claim_body(await optional_json(request))
        entry = await append(request.app[NODE], lambda ledger, c: claims.make_claim(
            ledger, c, kind, listing_id, body, now_ms()))
        return await _claim_response(request, entry.id.hex(), 201)

    return web.post(f"{PREFIX}/{kind}s/{{id}}/claims", create)


def response_route(action: str) -> web.RouteDef:
    @require("coordinator")
    async def handler(request: web.Request) -> web.Response:
        claim_id = claims.parse_entry(request.match_info["id"])
        body = claims.response_body(action, await optional_json(request))
        await append(request.app[NODE], lambda ledger, c: claims.respond(
            ledger, c, action, claim_id, body, now_ms()))
        return await _claim_response(request, claim_id)

    return web.post(f"{PREFIX}/claims/{{id}}/{action}", handler)


@require("reader")
async def get_claims(request: web.Request) -> web.Response:
    node = request.app[NODE]
    filters = claims.claim_filters(request.query)
    limit = page_limit(request)
    show = _show_private(request)
    items, next_cursor = await node.store.read(lambda c: claims.list_claims(
        c, node.store.ledger, limit=limit, show_private=show, **filters))
    return json_response({"items": items, "next_cursor": next_cursor})


@require("reader")
async def get_claim(request: web.Request) -> web.Response:
    return await _claim_response(request, claims.parse_entry(request.match_info["id"]))


@require("coordinator")
async def claim_match(request: web.Request) -> web.Response:
    """One call from a match to a claim on the other group's side of it."""
    body = matches.match_claim_body(await read_json(request))
    entry = await append(request.app[NODE], lambda ledger, c: matches.claim_match(
        ledger, c, body, now_ms()))
    return await _claim_response(request, entry.id.hex(), 201)


@require("reader")
async def get_matches(request: web.Request) -> web.Response:
    node = request.app[NODE]
    filters = matches.match_filters(request.query)
    limit = page_limit(request)
    now = now_ms()
    items, next_cursor = await node.store.read(lambda c: matches.list_matches(
        c, node.identity.node_id, now, limit=limit, **filters))
    return json_response({"items": items, "next_cursor": next_cursor})


def add_routes(app: web.Application) -> None:
    app.add_routes([
        claim_route("offer"),
        claim_route("need"),
        web.get(f"{PREFIX}/claims", get_claims),
        web.get(f"{PREFIX}/claims/{{id}}", get_claim),
        response_route("accept"),
        response_route("decline"),
        response_route("fulfil"),
        web.get(f"{PREFIX}/matches", get_matches),
        web.post(f"{PREFIX}/matches/claim", claim_match),
    ])
