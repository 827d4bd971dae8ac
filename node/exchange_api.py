"""Exchanges and matches in the client API: claims, accept / decline / fulfil, matches.

The checks and the appends live in plain functions over a connection and a Ledger, so
the CLI (node/cli.py) and the HTTP handlers share them. Every refusal is a Problem raised
inside the write transaction before anything is appended: nothing is written.

Private details (address, phone, name, notes) never travel in clear: they are sealed
(spec §12) to the counterpart's sealing key from its latest `profile`, and opened only
for a coordinator or admin of one of the two parties' nodes.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from decimal import Decimal
from typing import Any

from aiohttp import web

from protocol import ProtocolError, canonical, decode, parse_node_id
from protocol.errors import SealError
from protocol.identity import parse_entry_id
from protocol.seal import open_sealed, seal

from . import store as st
from .api import (
    PREFIX,
    check_params,
    int_param,
    json_response,
    protocol_problem,
    read_json,
    store_problem,
)
from .app import NODE, PRINCIPAL, require
from .exchange import ZERO, capacity, claim_status, dec
from .listing import decimal_text, number, rfc3339, status, to_json
from .problems import Problem, json_object

PRIVATE_FIELDS = {"address": 500, "phone": 50, "name": 200, "notes": 1000}
DIRECTIONS = ("incoming", "outgoing", "all")
CLAIM_STATUSES = ("pending", "accepted", "declined", "fulfilled")
URGENCY_RANK = {"critical": 4, "high": 3, "normal": 2, "low": 1}
PRIVILEGED = ("coordinator", "admin")


# -- input ----------------------------------------------------------------------------------


def _object(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    return {} if body is None else json_object(body, allowed)


def _quantity(value: Any) -> tuple[str, str | None]:
    """{value, unit} or a bare number (in the listing's unit) -> (decimal text, unit)."""
    if isinstance(value, dict):
        if set(value) != {"value", "unit"}:
            raise Problem(422, "invalid-field", "quantity is {\"value\": number, \"unit\": "
                          "string}", field="quantity")
        unit = value["unit"]
        if not isinstance(unit, str) or not 1 <= len(unit) <= 32:
            raise Problem(422, "invalid-field", "quantity.unit is 1 to 32 characters",
                          field="quantity")
        return decimal_text(value["value"], "quantity.value"), unit
    return decimal_text(value, "quantity"), None


def _text(body: dict[str, Any], key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Problem(422, "invalid-field", f"{key} is a string of at most {limit} "
                      "characters", field=key)
    return value


def _private(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise Problem(422, "invalid-field", "private is an object with any of: "
                      f"{', '.join(PRIVATE_FIELDS)}", field="private")
    for key, item in value.items():
        if key not in PRIVATE_FIELDS:
            raise Problem(422, "unknown-field", f"unknown private field {key!r}; allowed: "
                          f"{', '.join(PRIVATE_FIELDS)}", field=f"private.{key}")
        if not isinstance(item, str) or not 1 <= len(item) <= PRIVATE_FIELDS[key]:
            raise Problem(422, "invalid-field", f"private.{key} is a string of 1 to "
                          f"{PRIVATE_FIELDS[key]} characters", field=f"private.{key}")
    return dict(value)


def parse_entry(text: str, what: str = "id") -> str:
    try:
        parse_entry_id(text)
    except ProtocolError as exc:
        raise Problem(404, "not-found", exc.detail, field=what) from None
    return text


# -- reads shared by the writes ---------------------------------------------------------------


def _listing(conn: sqlite3.Connection, listing_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()


def _unit(row: sqlite3.Row) -> str | None:
    fields = json.loads(row["fields"])
    return fields["quantity"]["unit"] if "quantity" in fields else None


def _left(row: sqlite3.Row) -> Decimal:
    return max(ZERO, capacity(row) - dec(row["committed"]))


def seal_key(conn: sqlite3.Connection, author: str) -> bytes | None:
    """The sealing key from the latest `profile` of ``author`` this node holds."""
    row = conn.execute("SELECT payload FROM entries WHERE author = ? AND kind = 'profile' "
                       "AND payload IS NOT NULL ORDER BY seq DESC LIMIT 1",
                       (parse_node_id(author),)).fetchone()
    if row is None:
        return None
    key = decode(row["payload"]).get("seal_key")
    return key if isinstance(key, bytes) and len(key) == 32 else None


def _seal_to(ledger: st.Ledger, conn: sqlite3.Connection, author: str,
             details: dict[str, str]) -> bytes:
    key = seal_key(conn, author)
    if key is None:
        raise Problem(409, "no-seal-key", f"the profile of {author} (with its sealing key) has "
                      "not arrived at this node yet, so private details cannot be sealed to "
                      "it; retry once its log has synced, or send without 'private'",
                      field="private")
    try:
        return seal(ledger.identity.seal_private(), key, canonical.encode(details))
    except SealError as exc:
        raise Problem(422, exc.code, exc.detail, field="private") from None


def _claim_row(conn: sqlite3.Connection, claim_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM claims WHERE id = ?", (claim_id,)).fetchone()
    if row is None:
        raise Problem(404, "not-found", f"no claim with id {claim_id} on this node")
    return row


def _live_problem(row: sqlite3.Row, now: int) -> Problem | None:
    state = status(row, now)
    if state in ("withdrawn", "expired"):
        return Problem(409, state, f"this {row['kind']} is {state}")
    if _left(row) <= 0:
        return Problem(409, "nothing-available", f"this {row['kind']} is {state}: nothing "
                       "is left to claim")
    return None


def _amount(row: sqlite3.Row, value: str, unit: str | None) -> str:
    """A requested quantity, checked against the listing's unit; returns the decimal text."""
    listing_unit = _unit(row)
    if listing_unit is None:
        raise Problem(422, "invalid-field", f"this {row['kind']} has no quantity; send no "
                      "quantity (it is taken whole)", field="quantity")
    if unit is not None and unit != listing_unit:
        raise Problem(422, "unit-mismatch", f"the {row['kind']} is counted in "
                      f"{listing_unit!r}, not {unit!r} (units are not converted)",
                      field="quantity")
    return value


# -- writes -----------------------------------------------------------------------------------


def claim_body(body: Any) -> dict[str, Any]:
    """Check a claim's JSON before the write transaction (422s)."""
    body = _object(body, ("quantity", "message", "private"))
    out: dict[str, Any] = {"private": _private(body.get("private")),
                           "message": _text(body, "message", 1000)}
    if "quantity" in body:
        out["quantity"] = _quantity(body["quantity"])
    return out


def make_claim(ledger: st.Ledger, conn: sqlite3.Connection, kind: str | None, listing_id: str,
               body: dict[str, Any], now: int):
    """Append a claim on another node's offer or need (checked in this transaction)."""
    row = _listing(conn, listing_id)
    if row is None or (kind is not None and row["kind"] != kind) or row["hidden"]:
        raise Problem(404, "not-found", f"no {kind or 'listing'} with id {listing_id} on "
                      "this node")
    me = ledger.identity.node_id
    if row["author"] == me:
        raise Problem(422, "own-listing", f"this {row['kind']} is this node's own; claims "
                      "are for other groups' offers and needs")
    problem = _live_problem(row, now)
    if problem is not None:
        raise problem
    content: dict[str, Any] = {"target": bytes.fromhex(listing_id),
                               "target_author": parse_node_id(row["author"])}
    if "quantity" in body:
        value = _amount(row, *body["quantity"])
        left = _left(row)
        if Decimal(value) > left:
            raise Problem(409, "not-enough", f"asked for {value} but only {number(str(left))} "
                          f"{_unit(row)} are available", field="quantity")
        content["quantity"] = {"value": value, "unit": _unit(row)}
    if body.get("message") is not None:
        content["message"] = body["message"]
    if body.get("private"):
        content["sealed"] = _seal_to(ledger, conn, row["author"], body["private"])
    return ledger.append_local(conn, "claim", content)


def response_body(action: str, body: Any) -> dict[str, Any]:
    allowed = {"accept": ("quantity", "private"), "decline": ("reason",),
               "fulfil": ("quantity",)}[action]
    body = _object(body, allowed)
    out: dict[str, Any] = {}
    if "quantity" in body:
        out["quantity"] = _quantity(body["quantity"])
    if "private" in body:
        out["private"] = _private(body["private"])
    if "reason" in body:
        out["reason"] = _text(body, "reason", 500)
    return out


def respond(ledger: st.Ledger, conn: sqlite3.Connection, action: str, claim_id: str,
            body: dict[str, Any], now: int):
    """Append an accept, decline or fulfil for a claim (checked in this transaction)."""
    claim = _claim_row(conn, claim_id)
    me = ledger.identity.node_id
    row = _listing(conn, claim["target"])
    if row is None:
        raise Problem(409, "listing-unknown", "the listing this claim is about has not "
                      "arrived at this node")
    owner = row["author"]
    if claim["owner"] != owner:
        raise Problem(409, "not-a-claim-on-it", "this claim names another owner than the "
                      "listing's; it cannot be answered")
    state = claim_status(conn, claim)
    content: dict[str, Any] = {"target": bytes.fromhex(claim["target"]),
                               "claim": bytes.fromhex(claim_id),
                               "claim_author": parse_node_id(claim["claimant"])}
    if action in ("accept", "decline"):
        if owner != me:
            raise Problem(403, "not-owner", f"only the {row['kind']}'s owner ({owner}) can "
                          f"{action} a claim on it")
        if state["status"] != "pending":
            raise Problem(409, "not-pending", f"this claim is already {state['status']}")
    if action == "accept":
        problem = _live_problem(row, now)
        if problem is not None:
            raise problem
        if _unit(row) is not None:
            left = _left(row)
            if "quantity" in body:
                value = Decimal(_amount(row, *body["quantity"]))
                if value > left:
                    raise Problem(409, "not-enough", f"only {number(str(left))} {_unit(row)} "
                                  f"are still available, not {number(str(value))}",
                                  field="quantity")
            else:
                value = min(dec(claim["quantity"]) if claim["quantity"] else left, left)
            # Always explicit: what this accept commits never depends on the claim arriving.
            content["quantity"] = {"value": format(value.normalize(), "f"), "unit": _unit(row)}
        elif "quantity" in body:
            _amount(row, *body["quantity"])
        if body.get("private"):
            content["sealed"] = _seal_to(ledger, conn, claim["claimant"], body["private"])
    elif action == "decline":
        if body.get("reason") is not None:
            content["reason"] = body["reason"]
    else:  # fulfil
        if me not in (owner, claim["claimant"]):
            raise Problem(403, "not-a-party", "only the claimant or the owner can record "
                          "the hand-over")
        if state["status"] not in ("accepted", "fulfilled"):
            raise Problem(409, "not-accepted", f"this claim is {state['status']}; only an "
                          "accepted claim can be fulfilled")
        if any(r["kind"] == "fulfil" and r["author"] == me for r in state["responses"]):
            raise Problem(409, "already-fulfilled", "this node already recorded the "
                          "hand-over of this claim")
        if "quantity" in body:
            value = _amount(row, *body["quantity"])
            content["quantity"] = {"value": value, "unit": _unit(row)}
    return ledger.append_local(conn, action, content)


# -- claim JSON ---------------------------------------------------------------------------------


def _open(ledger: st.Ledger, box: bytes | None) -> dict[str, Any] | None:
    if box is None:
        return None
    try:
        value = decode(open_sealed(ledger.identity.seal_private(), box))
    except (SealError, ProtocolError):
        return None
    return value if isinstance(value, dict) else None


def _claim_unit(conn: sqlite3.Connection, claim: sqlite3.Row,
                listing: sqlite3.Row | None) -> str | None:
    row = conn.execute("SELECT payload FROM entries WHERE id = ?",
                       (bytes.fromhex(claim["id"]),)).fetchone()
    if row is not None and row["payload"] is not None:
        quantity = decode(row["payload"]).get("quantity")
        if quantity:
            return quantity["unit"]
    return _unit(listing) if listing is not None else None


def claim_json(conn: sqlite3.Connection, ledger: st.Ledger, claim: sqlite3.Row,
               show_private: bool) -> dict[str, Any]:
    listing = _listing(conn, claim["target"])
    state = claim_status(conn, claim)
    unit = _claim_unit(conn, claim, listing)
    listing_unit = _unit(listing) if listing is not None else None
    committed = state["committed"]
    out: dict[str, Any] = {
        "id": claim["id"], "target": claim["target"],
        "target_kind": listing["kind"] if listing is not None else None,
        "claimant": claim["claimant"], "owner": claim["owner"],
        "quantity": ({"value": number(claim["quantity"]), "unit": unit or ""}
                     if claim["quantity"] else None),
        "message": claim["message"], "status": state["status"],
        "committed_quantity": (
            {"value": number(committed), "unit": listing_unit} if committed is not None
            and listing_unit is not None else None),
        "created": rfc3339(claim["created"]),
        "updated": rfc3339(max([claim["created"], *(r["ts"] for r in state["responses"])])),
        "responses": [{"kind": r["kind"], "by": r["author"], "at": rfc3339(r["ts"])}
                      for r in state["responses"]],
    }
    me = ledger.identity.node_id
    if show_private and me in (claim["claimant"], claim["owner"]):
        out["private"] = _open(ledger, claim["sealed"])
        accept = next((r for r in sorted(state["responses"], key=lambda r: r["seq"])
                       if r["kind"] == "accept" and r["author"] == claim["owner"]), None)
        out["reply_private"] = _open(ledger, accept["sealed"]) if accept is not None else None
    return out


def list_claims(conn: sqlite3.Connection, ledger: st.Ledger, *, direction: str = "all",
                state: str | None = None, target: str | None = None, limit: int = 50,
                cursor: tuple[int, str] | None = None, show_private: bool = False
                ) -> tuple[list[dict[str, Any]], str | None]:
    """Claims newest first; ``state`` filters on the derived status."""
    me = ledger.identity.node_id
    where, params = ["1 = 1"], []
    if direction == "incoming":
        where.append("owner = ?")
        params.append(me)
    elif direction == "outgoing":
        where.append("claimant = ?")
        params.append(me)
    if target is not None:
        where.append("target = ?")
        params.append(target)
    if cursor is not None:
        where.append("(created < ? OR (created = ? AND id < ?))")
        params += [cursor[0], cursor[0], cursor[1]]
    out: list[dict[str, Any]] = []
    last = None
    for row in conn.execute(f"SELECT * FROM claims WHERE {' AND '.join(where)} "
                            "ORDER BY created DESC, id DESC", params):
        item = claim_json(conn, ledger, row, show_private)
        if state is not None and item["status"] != state:
            continue
        if len(out) == limit:
            return out, _encode([last["created"], last["id"]])  # type: ignore[index]
        out.append(item)
        last = row
    return out, None


# -- matches ------------------------------------------------------------------------------------


def _encode(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(text: str, shape: tuple[type, ...]) -> list[Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(value, list) or len(value) != len(shape) or not all(
                isinstance(v, t) and not isinstance(v, bool) for v, t in zip(value, shape,
                                                                             strict=True)):
            raise ValueError
    except (ValueError, TypeError):
        raise Problem(400, "invalid-parameter", "cursor is not one this node handed out; "
                      "start without it", field="cursor") from None
    return value


def _live(alias: str) -> str:
    return (f"{alias}.withdrawn = 0 AND {alias}.hidden = 0 AND {alias}.author NOT IN "
            f"(SELECT author FROM blocks) AND ({alias}.available_until IS NULL OR "
            f"{alias}.available_until >= :now) AND {alias}.available > 0")


def match_score(need: sqlite3.Row, distance: float | None) -> float:
    """Urgency weight (critical 1 … low 0.25) times closeness 1 / (1 + km / 10)."""
    weight = URGENCY_RANK.get(need["urgency"] or "normal", 2) / 4
    closeness = 1 / (1 + (distance if distance is not None else 10.0) / 10)
    return round(weight * closeness, 4)


def list_matches(conn: sqlite3.Connection, me: str, now: int, *, need: str | None = None,
                 offer: str | None = None, origin: str = "all", local_only: bool = False,
                 limit: int = 50, offset: int = 0
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """Matches whose need and offer are both live, best first (spec: distance, urgency,
    freshness)."""
    where = [_live("n"), _live("o")]
    params: dict[str, Any] = {"now": now, "limit": limit + 1, "offset": offset, "me": me}
    if need is not None:
        where.append("m.need = :need")
        params["need"] = need
    if offer is not None:
        where.append("m.offer = :offer")
        params["offer"] = offer
    if local_only or origin == "local":
        where.append("(n.author = :me OR o.author = :me)")
    elif origin != "all":
        where.append("(n.author = :origin OR o.author = :origin)")
        params["origin"] = origin
    rank = " ".join(f"WHEN '{u}' THEN {r}" for u, r in URGENCY_RANK.items())
    rows = conn.execute(
        "SELECT m.need, m.offer, m.distance_km FROM matches m "
        "JOIN listings n ON n.id = m.need JOIN listings o ON o.id = m.offer "
        f"WHERE {' AND '.join(where)} ORDER BY m.distance_km IS NULL, m.distance_km, "
        f"CASE coalesce(n.urgency, 'normal') {rank} ELSE 2 END DESC, "
        "max(n.updated, o.updated) DESC, m.need, m.offer LIMIT :limit OFFSET :offset",
        params).fetchall()
    more = len(rows) > limit
    out = []
    for r in rows[:limit]:
        n, o = _listing(conn, r["need"]), _listing(conn, r["offer"])
        distance = None if r["distance_km"] is None else round(r["distance_km"], 3)
        out.append({"need": to_json(n, now), "offer": to_json(o, now),
                    "distance_km": distance, "score": match_score(n, r["distance_km"])})
    return out, _encode([offset + limit]) if more else None


# -- handlers ---------------------------------------------------------------------------------


async def _write(node, fn) -> Any:
    try:
        entry = await node.store.write(fn)
    except ProtocolError as exc:
        raise protocol_problem(exc) from None
    except st.StoreError as exc:
        raise store_problem(exc) from None
    node.metrics.entries.labels("local").inc()
    return entry


def _show_private(request: web.Request) -> bool:
    principal = request.get(PRINCIPAL)
    return principal is not None and principal.role in PRIVILEGED


async def _claim_response(request: web.Request, claim_id: str, status_code: int = 200
                          ) -> web.Response:
    node = request.app[NODE]
    show = _show_private(request)
    body = await node.store.read(
        lambda c: claim_json(c, node.store.ledger, _claim_row(c, claim_id), show))
    headers = {"Location": f"{PREFIX}/claims/{claim_id}"} if status_code == 201 else None
    return json_response(body, status=status_code, headers=headers)


def claim_routes(kind: str) -> list[web.RouteDef]:
    @require("coordinator")
    async def create(request: web.Request) -> web.Response:
        node = request.app[NODE]
        listing_id = parse_entry(request.match_info["id"])
        body = claim_body(await read_json(request))
        entry = await _write(node, lambda c: make_claim(node.store.ledger, c, kind,
                                                        listing_id, body, st.now_ms()))
        return await _claim_response(request, entry.id.hex(), 201)

    return [web.post(f"{PREFIX}/{kind}s/{{id}}/claims", create)]


def response_route(action: str) -> web.RouteDef:
    @require("coordinator")
    async def handler(request: web.Request) -> web.Response:
        node = request.app[NODE]
        claim_id = parse_entry(request.match_info["id"])
        raw = await read_json(request) if request.can_read_body else None
        body = response_body(action, raw)
        await _write(node, lambda c: respond(node.store.ledger, c, action, claim_id, body,
                                             st.now_ms()))
        return await _claim_response(request, claim_id)

    return web.post(f"{PREFIX}/claims/{{id}}/{action}", handler)


@require("reader")
async def get_claims(request: web.Request) -> web.Response:
    node = request.app[NODE]
    check_params(request, {"direction", "status", "target", "limit", "cursor"})
    q = request.query
    direction = q.get("direction", "all")
    if direction not in DIRECTIONS:
        raise Problem(400, "invalid-parameter", f"direction must be one of "
                      f"{', '.join(DIRECTIONS)}", field="direction")
    state = q.get("status")
    if state is not None and state not in CLAIM_STATUSES:
        raise Problem(400, "invalid-parameter", f"status must be one of "
                      f"{', '.join(CLAIM_STATUSES)}", field="status")
    target = q.get("target")
    if target is not None:
        try:
            parse_entry_id(target)
        except ProtocolError:
            raise Problem(400, "invalid-parameter", "target is a listing id (64 hex)",
                          field="target") from None
    limit = int_param(request, "limit", node.config.page_size, 1, node.config.max_page_size)
    cursor = tuple(_decode(q["cursor"], (int, str))) if "cursor" in q else None
    show = _show_private(request)
    items, next_cursor = await node.store.read(lambda c: list_claims(
        c, node.store.ledger, direction=direction, state=state, target=target, limit=limit,
        cursor=cursor, show_private=show))  # type: ignore[arg-type]
    return json_response({"items": items, "next_cursor": next_cursor})


@require("reader")
async def get_claim(request: web.Request) -> web.Response:
    return await _claim_response(request, parse_entry(request.match_info["id"]))


@require("reader")
async def get_matches(request: web.Request) -> web.Response:
    node = request.app[NODE]
    check_params(request, {"need", "offer", "origin", "local_only", "limit", "cursor"})
    q = request.query
    ids: dict[str, str | None] = {}
    for key in ("need", "offer"):
        ids[key] = q.get(key)
        if ids[key] is not None:
            try:
                parse_entry_id(ids[key])
            except ProtocolError:
                raise Problem(400, "invalid-parameter", f"{key} is a listing id (64 hex)",
                              field=key) from None
    origin = q.get("origin", "all")
    if origin not in ("local", "all"):
        try:
            parse_node_id(origin)
        except ProtocolError:
            raise Problem(400, "invalid-parameter", "origin is 'local', 'all' or a node id",
                          field="origin") from None
    local_only = q.get("local_only", "false")
    if local_only not in ("true", "false"):
        raise Problem(400, "invalid-parameter", "local_only is true or false",
                      field="local_only")
    limit = int_param(request, "limit", node.config.page_size, 1, node.config.max_page_size)
    offset = _decode(q["cursor"], (int,))[0] if "cursor" in q else 0
    now = st.now_ms()
    items, next_cursor = await node.store.read(lambda c: list_matches(
        c, node.identity.node_id, now, need=ids["need"], offer=ids["offer"], origin=origin,
        local_only=local_only == "true", limit=limit, offset=max(0, offset)))
    return json_response({"items": items, "next_cursor": next_cursor})


def add_routes(app: web.Application) -> None:
    app.add_routes([
        *claim_routes("offer"),
        *claim_routes("need"),
        web.get(f"{PREFIX}/claims", get_claims),
        web.get(f"{PREFIX}/claims/{{id}}", get_claim),
        response_route("accept"),
        response_route("decline"),
        response_route("fulfil"),
        web.get(f"{PREFIX}/matches", get_matches),
    ])
