"""Client API under /api/v1: offers, needs, logs, tokens, node info."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import h3
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from protocol import VERSION, ProtocolError, parse_node_id
from protocol.identity import parse_entry_id

from . import __version__, auth
from . import store as st
from .app import NODE, require
from .listing import parse_time, payload_from_json, rfc3339, to_json
from .problems import Problem, json_object
from .query import STATUSES, ListingQuery, QueryError, decode_cursor
from .query import run as run_query

_FIELD_RE = re.compile(r"field '([^']+)'")
PREFIX = "/api/v1"


def protocol_problem(exc: ProtocolError) -> Problem:
    m = _FIELD_RE.search(exc.detail)
    # An update's fields sit under 'set' in the payload; name them as the client sent them.
    field = m.group(1).removeprefix("set.") if m else None
    return Problem(422, exc.code, exc.detail, field=field)


def store_problem(exc: st.StoreError) -> Problem:
    return Problem(409, exc.code, exc.detail)


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type",
                      "send the body as JSON with 'Content-Type: application/json'")
    # The app's client_max_size is raised for federation pulls; the client API's own,
    # smaller limit is enforced here.
    limit = request.app[NODE].config.max_body_bytes
    if (request.content_length or 0) > limit or len(raw := await request.read()) > limit:
        raise Problem(413, "body-too-large", f"request body is larger than the limit of "
                      f"{limit} bytes")
    try:
        body = json.loads(raw)
        # Lone surrogates ("\ud800") parse but are not UTF-8: refuse them before they reach
        # msgpack or SQLite as a 500.
        json.dumps(body, ensure_ascii=False).encode()
        return body
    except (ValueError, UnicodeError) as exc:
        raise Problem(400, "malformed-json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "malformed-json", "the body is not valid JSON: nested too "
                      "deeply") from None


def check_params(request: web.Request, allowed: set[str]) -> None:
    for key in request.query:
        if key not in allowed:
            raise Problem(400, "unknown-parameter", f"unknown query parameter {key!r}; "
                          f"allowed: {', '.join(sorted(allowed))}", field=key)


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise Problem(400, "invalid-parameter", f"{name} must be an integer",
                      field=name) from None
    if not lo <= value <= hi:
        raise Problem(400, "invalid-parameter", f"{name} must be between {lo} and {hi}",
                      field=name)
    return value


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


# -- operations -------------------------------------------------------------------------


@require(None)
async def healthz(request: web.Request) -> web.Response:
    node = request.app[NODE]
    await node.store.read(lambda c: c.execute("SELECT 1").fetchone())
    return json_response({"status": "ok", "node": node.identity.node_id})


@require(None)
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[NODE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@require(None)
async def openapi(request: web.Request) -> web.Response:
    text = resources.files("node").joinpath("openapi.json").read_text()
    return web.Response(text=text, content_type="application/json")


@require("reader")
async def node_info(request: web.Request) -> web.Response:
    node = request.app[NODE]

    def counts(c):
        row = c.execute(
            "SELECT (SELECT count(*) FROM listings WHERE kind = 'offer') AS offers, "
            "(SELECT count(*) FROM listings WHERE kind = 'need') AS needs, "
            "(SELECT count(*) FROM heads) AS logs, "
            "(SELECT count(*) FROM entries) AS entries, "
            "(SELECT count(*) FROM forks) AS forks").fetchone()
        return dict(row)

    return json_response({
        "id": node.identity.node_id,
        "name": node.config.name,
        "version": __version__,
        "protocol_version": VERSION,
        "seal_key": node.identity.seal_public().hex(),
        "counts": await node.store.read(counts),
    })


# -- offers and needs -------------------------------------------------------------------


def listing_routes(kind: str):
    plural = kind + "s"

    @require("coordinator")
    async def create(request: web.Request) -> web.Response:
        node = request.app[NODE]
        content = payload_from_json(kind, await read_json(request))
        try:
            entry = await node.store.write(
                lambda c: node.store.ledger.append_local(c, kind, content))
        except ProtocolError as exc:
            raise protocol_problem(exc) from None
        except st.StoreError as exc:
            raise store_problem(exc) from None
        node.metrics.entries.labels("local").inc()
        ts = entry.header.timestamp
        # The projection row this append just wrote, rebuilt here to spare a read.
        row = {"id": entry.id.hex(), "kind": kind, "author": node.identity.node_id,
               "fields": json.dumps(content), "withdrawn": 0, "created": ts, "updated": ts,
               "available_until": content.get("available_until"), "committed": "0",
               "fulfilled": "0", "quantity": content.get("quantity", {}).get("value")}
        body = to_json(row, st.now_ms())
        return json_response(body, status=201,
                             headers={"Location": f"{PREFIX}/{plural}/{entry.id.hex()}"})

    @require("reader")
    async def listing(request: web.Request) -> web.Response:
        node = request.app[NODE]
        check_params(request, {"q", "category", "near", "radius_km", "status", "origin",
                               "updated_since", "cursor", "limit"})
        query = parse_query(request, kind, node.config)
        now = st.now_ms()
        try:
            rows, cursor = await node.store.read(lambda c: run_query(c, query, now))
        except QueryError as exc:
            raise Problem(400, "invalid-parameter", exc.detail, field=exc.field) from None
        return json_response({"items": [to_json(r, now) for r in rows],
                              "next_cursor": cursor})

    @require("reader")
    async def get_one(request: web.Request) -> web.Response:
        node = request.app[NODE]
        entry_id = _entry_id(request)
        return json_response(await node.store.read(lambda c: _get(c, kind, entry_id)))

    @require("coordinator")
    async def patch(request: web.Request) -> web.Response:
        node = request.app[NODE]
        entry_id = _entry_id(request)
        changes = payload_from_json(kind, await read_json(request), partial=True)
        await _change(node, kind, entry_id, "update",
                      {"target": bytes.fromhex(entry_id), "set": changes})
        return json_response(await node.store.read(lambda c: _get(c, kind, entry_id)))

    @require("coordinator")
    async def delete(request: web.Request) -> web.Response:
        node = request.app[NODE]
        entry_id = _entry_id(request)
        await _change(node, kind, entry_id, "withdraw", {"target": bytes.fromhex(entry_id)})
        return json_response(await node.store.read(lambda c: _get(c, kind, entry_id)))

    return [
        web.post(f"{PREFIX}/{plural}", create),
        web.get(f"{PREFIX}/{plural}", listing),
        web.get(f"{PREFIX}/{plural}/{{id}}", get_one),
        web.patch(f"{PREFIX}/{plural}/{{id}}", patch),
        web.delete(f"{PREFIX}/{plural}/{{id}}", delete),
    ]


def _entry_id(request: web.Request) -> str:
    text = request.match_info["id"]
    try:
        parse_entry_id(text)
    except ProtocolError as exc:
        raise Problem(404, "not-found", exc.detail, field="id") from None
    return text


def _get(conn, kind: str, entry_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM listings WHERE id = ? AND kind = ?",
                       (entry_id, kind)).fetchone()
    if row is None:
        raise Problem(404, "not-found", f"no {kind} with id {entry_id} on this node")
    return to_json(row, st.now_ms())


async def _change(node, kind: str, entry_id: str, change: str, content: dict) -> None:
    """Append an update or withdraw, after checking the target in the same transaction."""

    def write(conn):
        row = conn.execute("SELECT author, withdrawn, fields FROM listings WHERE id = ? AND "
                           "kind = ?", (entry_id, kind)).fetchone()
        if row is None:
            raise Problem(404, "not-found", f"no {kind} with id {entry_id} on this node")
        if row["author"] != node.identity.node_id:
            raise Problem(403, "not-origin", f"this {kind} belongs to {row['author']}; only "
                          "its origin node can change it")
        if row["withdrawn"]:
            raise Problem(409, "withdrawn", f"this {kind} is withdrawn and cannot change")
        if change == "update":  # the window must hold with the fields it keeps, too
            merged = {**json.loads(row["fields"]), **content["set"]}
            start, end = merged.get("available_from"), merged.get("available_until")
            if start is not None and end is not None and end < start:
                raise Problem(422, "payload-schema", "available_until must not be before "
                              "available_from", field="available_until")
        return node.store.ledger.append_local(conn, change, content)

    try:
        await node.store.write(write)
    except ProtocolError as exc:
        raise protocol_problem(exc) from None
    except st.StoreError as exc:
        raise store_problem(exc) from None
    node.metrics.entries.labels("local").inc()


def parse_query(request: web.Request, kind: str, config) -> ListingQuery:
    q = request.query
    query = ListingQuery(kind=kind)
    query.limit = int_param(request, "limit", config.page_size, 1, config.max_page_size)
    if "q" in q:
        query.q = q["q"][:500]
    if "category" in q:
        query.category = q["category"].strip("/")
    if "near" in q:
        cell = q["near"]
        if not h3.is_valid_cell(cell):
            raise Problem(400, "invalid-parameter", "near must be an H3 cell string",
                          field="near")
        query.near = h3.cell_to_latlng(cell)
        query.radius_km = int_param(request, "radius_km", 10, 0, 1000)
    elif "radius_km" in q:
        raise Problem(400, "invalid-parameter", "radius_km needs near", field="radius_km")
    if "status" in q:
        if q["status"] not in STATUSES:
            raise Problem(400, "invalid-parameter",
                          f"status must be one of {', '.join(STATUSES)}", field="status")
        query.status = q["status"]
    if "origin" in q:
        origin = q["origin"]
        if origin not in ("local", "all"):
            try:
                parse_node_id(origin)
            except ProtocolError:
                raise Problem(400, "invalid-parameter", "origin is 'local', 'all' or a node "
                              "id", field="origin") from None
        query.origin = origin
    if "updated_since" in q:
        try:
            query.updated_since = parse_time(q["updated_since"], "updated_since")
        except Problem as exc:
            raise Problem(400, "invalid-parameter", exc.detail, field="updated_since") from None
    if "cursor" in q:
        try:
            query.cursor = decode_cursor(q["cursor"])
        except QueryError as exc:
            raise Problem(400, "invalid-parameter", exc.detail, field="cursor") from None
    return query


# -- logs ---------------------------------------------------------------------------------


@require("reader")
async def logs(request: web.Request) -> web.Response:
    node = request.app[NODE]
    heads = await node.store.read(st.heads)
    return json_response({"logs": [
        {"author": "am" + a.hex(), "seq": h.seq, "head": h.id.hex()}
        for a, h in sorted(heads.items())
    ]})


@require("reader")
async def log_entries(request: web.Request) -> web.Response:
    node = request.app[NODE]
    check_params(request, {"after", "limit"})
    try:
        author = parse_node_id(request.match_info["author"])
    except ProtocolError as exc:
        raise Problem(404, "not-found", exc.detail, field="author") from None
    after = int_param(request, "after", 0, 0, 2**53)
    limit = int_param(request, "limit", 100, 1, 500)
    rows = await node.store.read(lambda c: st.entry_rows(c, author, after, limit))
    entries = [{"seq": r["seq"], "id": r["id"].hex(), "header": r["raw"].hex(),
                "payload": None if r["payload"] is None else r["payload"].hex()} for r in rows]
    return json_response({"author": request.match_info["author"], "entries": entries,
                          "next_after": entries[-1]["seq"] if len(entries) == limit else None})


@require("reader")
async def forks(request: web.Request) -> web.Response:
    node = request.app[NODE]
    rows = await node.store.read(
        lambda c: c.execute("SELECT author, seq, proof, found FROM forks").fetchall())
    return json_response({"forks": [
        {"author": "am" + r["author"].hex(), "seq": r["seq"], "proof": r["proof"].hex(),
         "found": r["found"]} for r in rows]})


# -- tokens ---------------------------------------------------------------------------------


@require("admin")
async def create_token(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = json_object(await read_json(request), ("name", "role"))
    role, name = body.get("role"), body.get("name", "api")
    if role not in auth.ROLES:
        raise Problem(422, "invalid-field", f"role must be one of {', '.join(auth.ROLES)}",
                      field="role")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise Problem(422, "invalid-field", "name is 1 to 100 characters", field="name")
    token_id, token = await node.store.write(
        lambda c: auth.create_token(c, role, name, st.now_ms()))
    return json_response({"id": token_id, "name": name, "role": role, "token": token},
                         status=201)


@require("admin")
async def list_tokens(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response({"tokens": await node.store.read(auth.list_tokens)})


@require("admin")
async def revoke_token(request: web.Request) -> web.Response:
    node = request.app[NODE]
    token_id = request.match_info["id"]
    if not await node.store.write(lambda c: auth.revoke_token(c, token_id, st.now_ms())):
        raise Problem(404, "not-found", f"no active token with id {token_id!r}")
    node.tokens.clear()
    return web.Response(status=204)


# -- peers ----------------------------------------------------------------------------------


def peer_rows(conn, me: bytes) -> list[dict[str, Any]]:
    """Peers our log trusts, with the progress last saved by the gossip loop."""
    rows = conn.execute(
        "SELECT t.peer, t.url, p.last_success, p.last_error, p.last_error_at, p.bytes_in, "
        "p.bytes_out, p.entries_in, p.behind FROM trust_edges t LEFT JOIN peer_state p "
        "ON p.peer = t.peer WHERE t.author = ? AND t.active = 1 ORDER BY t.peer", (me,))
    return [{
        "id": "am" + r["peer"].hex(), "url": r["url"],
        "last_success": rfc3339(r["last_success"]), "last_error": r["last_error"],
        "last_error_at": rfc3339(r["last_error_at"]), "entries_behind": r["behind"],
        "entries_in": r["entries_in"] or 0, "bytes_in": r["bytes_in"] or 0,
        "bytes_out": r["bytes_out"] or 0,
    } for r in rows]


def _live(node, peer: dict[str, Any]) -> dict[str, Any]:
    """Prefer the gossip loop's in-memory figures: fresher than the saved ones."""
    link = node.gossip.links.get(parse_node_id(peer["id"])) if node.gossip else None
    if link is None:
        return peer
    live = link.as_json()
    for key in ("last_success", "last_error_at"):
        live[key] = rfc3339(live[key])
    return {**peer, **live}


@require("reader")
async def list_peers(request: web.Request) -> web.Response:
    node = request.app[NODE]
    rows = await node.store.read(lambda c: peer_rows(c, node.identity.public))
    return json_response({"peers": [_live(node, p) for p in rows]})


@require("admin")
async def add_peer(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = json_object(await read_json(request), ("id", "url"))
    try:
        peer = parse_node_id(body.get("id"))
    except ProtocolError as exc:
        raise Problem(422, "invalid-field", exc.detail, field="id") from None
    if peer == node.identity.public:
        raise Problem(422, "invalid-field", "a node cannot peer with itself", field="id")
    url = body.get("url")
    try:
        await node.store.write(lambda c: add_trust(node.store.ledger, c, peer, url))
    except ProtocolError as exc:
        raise protocol_problem(exc) from None
    await node.gossip.refresh()
    rows = await node.store.read(lambda c: peer_rows(c, node.identity.public))
    out = next(p for p in rows if p["id"] == body["id"])
    return json_response(_live(node, out), status=201,
                         headers={"Location": f"{PREFIX}/peers/{body['id']}"})


def add_trust(ledger: st.Ledger, conn, peer: bytes, url: Any):
    """Append a trust entry unless the peer is already trusted at that URL."""
    row = conn.execute("SELECT url FROM trust_edges WHERE author = ? AND peer = ? AND "
                       "active = 1", (ledger.identity.public, peer)).fetchone()
    if row is not None and row["url"] == url:
        return None
    return ledger.append_local(conn, "trust", {"peer": peer, "url": url})


def remove_trust(ledger: st.Ledger, conn, peer: bytes):
    row = conn.execute("SELECT 1 FROM trust_edges WHERE author = ? AND peer = ? AND "
                       "active = 1", (ledger.identity.public, peer)).fetchone()
    if row is None:
        raise Problem(404, "not-found", f"am{peer.hex()} is not a peer of this node")
    return ledger.append_local(conn, "untrust", {"peer": peer})


@require("admin")
async def remove_peer(request: web.Request) -> web.Response:
    node = request.app[NODE]
    try:
        peer = parse_node_id(request.match_info["id"])
    except ProtocolError as exc:
        raise Problem(404, "not-found", exc.detail, field="id") from None
    await node.store.write(lambda c: remove_trust(node.store.ledger, c, peer))
    await node.gossip.refresh()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
        web.get(f"{PREFIX}/openapi.json", openapi),
        web.get(f"{PREFIX}/node", node_info),
        *listing_routes("offer"),
        *listing_routes("need"),
        web.get(f"{PREFIX}/logs", logs),
        web.get(f"{PREFIX}/logs/{{author}}/entries", log_entries),
        web.get(f"{PREFIX}/forks", forks),
        web.get(f"{PREFIX}/peers", list_peers),
        web.post(f"{PREFIX}/peers", add_peer),
        web.delete(f"{PREFIX}/peers/{{id}}", remove_peer),
        web.post(f"{PREFIX}/tokens", create_token),
        web.get(f"{PREFIX}/tokens", list_tokens),
        web.delete(f"{PREFIX}/tokens/{{id}}", revoke_token),
    ])
