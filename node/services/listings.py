"""Offers and needs: post, change, withdraw, erase, read and search them.

Every function takes the ledger and a connection inside the caller's transaction (the
async writer for the API and the web app, `Ledger.transaction` for the CLI), so all three
interfaces run the same checks and append the same entries.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import h3

from protocol import ProtocolError, parse_node_id
from protocol.area import cell_resolution
from protocol.kinds import LISTING_FIELDS, NEED_FIELDS

from ..config import Config
from ..state import visibility
from ..state.erasure import traces
from ..state.query import STATUSES, ListingQuery, QueryError, decode_cursor
from ..state.query import run as run_query
from ..store.ledger import Ledger, now_ms
from .errors import BadParameter, Conflict, Forbidden, Invalid, NotFound
from .input_checks import checked, window
from .values import decimal_text, json_object, number, parse_time, rfc3339, strict_int

TIME_FIELDS = ("available_from", "available_until")
MAX_Q = 500
QUERY_PARAMS = frozenset({"q", "category", "near", "radius_km", "status", "origin",
                          "updated_since", "cursor", "limit"})


def payload_from_json(kind: str, body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Convert and type-check client JSON; the protocol schema does the rest."""
    body = json_object(body, NEED_FIELDS if kind == "need" else LISTING_FIELDS)
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in TIME_FIELDS:
            value = parse_time(value, key)
        elif key == "quantity":
            if not isinstance(value, dict) or set(value) - {"value", "unit"}:
                raise Invalid("invalid-field", "quantity is {\"value\": number, "
                              "\"unit\": string}", field="quantity")
            if "value" not in value or "unit" not in value:
                raise Invalid("invalid-field", "quantity needs both value and unit",
                              field="quantity")
            value = {"value": decimal_text(value["value"], "quantity.value"),
                     "unit": value["unit"]}
        out[key] = value
    if partial and not out:
        raise Invalid("invalid-body", "send at least one field to change")
    return out


def to_json(row: Any, now: int) -> dict[str, Any]:
    """A projection row as the API shows it."""
    fields = json.loads(row["fields"])
    out: dict[str, Any] = {"id": row["id"], "kind": row["kind"], "origin": row["author"]}
    for key, value in fields.items():
        if key in TIME_FIELDS:
            out[key] = rfc3339(value)
        elif key == "quantity":
            out[key] = {"value": number(value["value"]), "unit": value["unit"]}
        else:
            out[key] = value
    out.setdefault("description", "")
    out.setdefault("tags", [])
    if "quantity" in fields and "committed" in row.keys():
        unit = fields["quantity"]["unit"]
        left = max(Decimal(0), Decimal(fields["quantity"]["value"]) - Decimal(row["committed"]))
        out["available_quantity"] = {"value": number(str(left)), "unit": unit}
        out["committed_quantity"] = {"value": number(row["committed"]), "unit": unit}
    out["status"] = status(row, now)
    out["created"] = rfc3339(row["created"])
    out["updated"] = rfc3339(row["updated"])
    return out


def status(row: Any, now: int) -> str:
    """open -> partly-committed -> committed -> fulfilled; withdrawn; expired (spec §9.6)."""
    if row["withdrawn"]:
        return "withdrawn"
    if row["available_until"] is not None and row["available_until"] < now:
        return "expired"
    keys = row.keys()
    committed = Decimal(row["committed"]) if "committed" in keys else Decimal(0)
    if not committed:
        return "open"
    capacity = Decimal(row["quantity"]) if row["quantity"] else Decimal(1)
    if committed < capacity:
        return "partly-committed"
    if Decimal(row["fulfilled"]) >= committed:
        return "fulfilled"
    return "committed"


# -- actions ------------------------------------------------------------------------------


def post(ledger: Ledger, conn: sqlite3.Connection, kind: str, body: Any) -> dict[str, Any]:
    """Append a new offer or need of this node; returns it as the API shows it."""
    content = payload_from_json(kind, body)
    checked(conn, ledger, kind, content, now_ms())
    entry = ledger.append_local(conn, kind, content)
    return get(conn, kind, entry.id.hex(), now_ms(), own=True)


def update(ledger: Ledger, conn: sqlite3.Connection, kind: str, entry_id: str,
           body: Any) -> dict[str, Any]:
    changes = payload_from_json(kind, body, partial=True)
    row = own_listing(ledger, conn, kind, entry_id, "change")
    if row["withdrawn"]:
        raise Conflict("withdrawn", f"this {kind} is withdrawn and cannot change")
    checked(conn, ledger, kind, changes, now_ms())
    window(kind, {**json.loads(row["fields"]), **changes})  # with the fields it keeps
    ledger.append_local(conn, "update", {"target": bytes.fromhex(entry_id), "set": changes})
    return get(conn, kind, entry_id, now_ms(), own=True)


def withdraw(ledger: Ledger, conn: sqlite3.Connection, kind: str, entry_id: str
             ) -> dict[str, Any]:
    row = own_listing(ledger, conn, kind, entry_id, "withdraw")
    if row["withdrawn"]:
        raise Conflict("withdrawn", f"this {kind} is already withdrawn")
    ledger.append_local(conn, "withdraw", {"target": bytes.fromhex(entry_id)})
    return get(conn, kind, entry_id, now_ms(), own=True)


def redact(ledger: Ledger, conn: sqlite3.Connection, kind: str, entry_id: str,
           reason: str = "") -> None:
    """Withdraw (if still open) and ask every node to erase the payload, and that of
    every entry of ours that shows something of it (its updates and withdraws, our
    answers to claims on it): one redact each, so a node that pulls our log later can
    tell each missing payload was erased on purpose (spec §13.3). Every node also erases
    the claims on it (state/erasure.py)."""
    row = own_listing(ledger, conn, kind, entry_id, "erase")
    target = bytes.fromhex(entry_id)
    if not row["withdrawn"]:
        ledger.append_local(conn, "withdraw", {"target": target})
    me = ledger.identity.public
    ours = [t for t in traces(conn, [(target, me)])
            if conn.execute("SELECT 1 FROM entries WHERE id = ? AND author = ?",
                            (t, me)).fetchone()]
    ledger.append_local(conn, "redact", {"target": target, "reason": reason})
    for trace in ours:
        ledger.append_local(conn, "redact", {"target": trace})


def own_listing(ledger: Ledger, conn: sqlite3.Connection, kind: str, entry_id: str,
                verb: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM listings WHERE id = ? AND kind = ?",
                       (entry_id, kind)).fetchone()
    if row is None:
        raise NotFound("not-found", f"no {kind} with id {entry_id} on this node")
    if row["author"] != ledger.identity.node_id:
        hint = ("; an admin can hide or erase it locally with /api/v1/moderation"
                if verb == "erase" else "")
        raise Forbidden("not-origin", f"this {kind} belongs to {row['author']}; only its "
                        f"origin node can {verb} it{hint}")
    return row


# -- reads ----------------------------------------------------------------------------------


def get(conn: sqlite3.Connection, kind: str, entry_id: str, now: int, *,
        own: bool = False) -> dict[str, Any]:
    """One listing as the API shows it; hidden and blocked ones are not found (``own``:
    this node's own listing, read back after changing it, whatever its moderation)."""
    if own:
        row = conn.execute("SELECT * FROM listings WHERE id = ? AND kind = ?",
                           (entry_id, kind)).fetchone()
    else:
        row = visibility.listing(conn, entry_id, kind)
    if row is None:
        raise NotFound("not-found", f"no {kind} with id {entry_id} on this node")
    return to_json(row, now)


def search(conn: sqlite3.Connection, query: ListingQuery, now: int
           ) -> tuple[list[dict[str, Any]], str | None]:
    try:
        rows, cursor = run_query(conn, query, now)
    except QueryError as exc:
        raise BadParameter("invalid-parameter", exc.detail, field=exc.field) from None
    return [to_json(r, now) for r in rows], cursor


def _int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    value = strict_int(text)
    if value is None:
        raise BadParameter("invalid-parameter", f"{name} must be an integer",
                           field=name)
    if not lo <= value <= hi:
        raise BadParameter("invalid-parameter", f"{name} must be between {lo} and {hi}",
                           field=name)
    return value


def parse_query(kind: str, q: Mapping[str, str], config: Config) -> ListingQuery:
    """Query parameters (strings, as a URL or a form sends them) to a checked query."""
    for key in q:
        if key not in QUERY_PARAMS:
            raise BadParameter("unknown-parameter", f"unknown query parameter {key!r}; "
                               f"allowed: {', '.join(sorted(QUERY_PARAMS))}", field=key)
    query = ListingQuery(kind=kind)
    query.limit = _int(q, "limit", config.page_size, 1, config.max_page_size)
    if "q" in q:
        if len(q["q"]) > MAX_Q:
            raise BadParameter("invalid-parameter", f"q is at most {MAX_Q} characters",
                               field="q")
        query.q = q["q"]
    if "category" in q:
        query.category = q["category"].strip("/")
    if "near" in q:
        # The protocol's own check (exact pattern, then the H3 bit layout) before h3 sees
        # it: h3 takes ' 8f..', '0x8f..' and upper case, and overflows on '-1' (a 500).
        try:
            cell_resolution(q["near"])
        except ProtocolError:
            raise BadParameter("invalid-parameter", "near must be an H3 cell: 15 lowercase "
                               "hex digits, e.g. '8828308281fffff'", field="near") from None
        query.near = h3.cell_to_latlng(q["near"])
    # Checked even without near (where it changes nothing): a schema cannot tie one query
    # parameter to another, so the API does not either.
    query.radius_km = _int(q, "radius_km", 10, 0, 1000)
    if "status" in q:
        if q["status"] not in STATUSES:
            raise BadParameter("invalid-parameter",
                               f"status must be one of {', '.join(STATUSES)}", field="status")
        query.status = q["status"]
    if "origin" in q:
        query.origin = parse_origin(q["origin"])
    if "updated_since" in q:
        try:
            query.updated_since = parse_time(q["updated_since"], "updated_since")
        except Invalid as exc:
            raise BadParameter("invalid-parameter", exc.detail,
                               field="updated_since") from None
    if "cursor" in q:
        try:
            query.cursor = decode_cursor(q["cursor"])
        except QueryError as exc:
            raise BadParameter("invalid-parameter", exc.detail, field="cursor") from None
    return query


def parse_origin(origin: str) -> str:
    if origin not in ("local", "all"):
        try:
            parse_node_id(origin)
        except ProtocolError:
            raise BadParameter("invalid-parameter", "origin is 'local', 'all' or a node id",
                               field="origin") from None
    return origin
