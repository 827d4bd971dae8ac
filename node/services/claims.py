"""Exchanges: claims on another group's offer or need, and their accept / decline / fulfil.

Every refusal is raised inside the write transaction before anything is appended, so a
refused action writes nothing. Private details (address, phone, name, notes) never travel
in clear: they are sealed (spec §12) to the counterpart's key (sealing.py) and opened only
for a coordinator or admin of one of the two parties' nodes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from protocol import ProtocolError, decode, parse_node_id
from protocol.identity import parse_entry_id

from ..state import visibility
from ..state.exchange import LINKS, ZERO, capacity, claim_status, dec, in_unit, quantity_of
from ..store.ledger import Ledger
from .errors import BadParameter, Conflict, Forbidden, Invalid, NotFound
from .fills import attach, free, in_listing_unit
from .listings import status
from .pages import decode_cursor, encode_cursor
from .sealing import Keyring, open_box, seal_to
from .values import decimal_text, number, optional_object, rfc3339

PRIVATE_FIELDS = {"address": 500, "phone": 50, "name": 200, "notes": 1000}
DIRECTIONS = ("incoming", "outgoing", "all")
CLAIM_STATUSES = ("pending", "accepted", "declined", "fulfilled")
PRIVILEGED = ("coordinator", "admin")


# -- input ----------------------------------------------------------------------------------


def _quantity(value: Any) -> tuple[str, str | None]:
    """{value, unit} or a bare number (in the listing's unit) -> (decimal text, unit)."""
    if isinstance(value, dict):
        if set(value) != {"value", "unit"}:
            raise Invalid("invalid-field", "quantity is {\"value\": number, \"unit\": "
                          "string}", field="quantity")
        unit = value["unit"]
        if not isinstance(unit, str) or not 1 <= len(unit) <= 32:
            raise Invalid("invalid-field", "quantity.unit is 1 to 32 characters",
                          field="quantity")
        return decimal_text(value["value"], "quantity.value"), unit
    return decimal_text(value, "quantity"), None


def _text(body: dict[str, Any], key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid("invalid-field", f"{key} is a string of at most {limit} "
                      "characters", field=key)
    return value


def _private(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise Invalid("invalid-field", "private is an object with any of: "
                      f"{', '.join(PRIVATE_FIELDS)}", field="private")
    for key, item in value.items():
        if key not in PRIVATE_FIELDS:
            raise Invalid("unknown-field", f"unknown private field {key!r}; allowed: "
                          f"{', '.join(PRIVATE_FIELDS)}", field=f"private.{key}")
        if not isinstance(item, str) or not 1 <= len(item) <= PRIVATE_FIELDS[key]:
            raise Invalid("invalid-field", f"private.{key} is a string of 1 to "
                          f"{PRIVATE_FIELDS[key]} characters", field=f"private.{key}")
    return dict(value)


def parse_entry(text: str, what: str = "id") -> str:
    try:
        parse_entry_id(text)
    except ProtocolError as exc:
        raise NotFound("not-found", exc.detail, field=what) from None
    return text


# -- reads shared by the writes ---------------------------------------------------------------


def _listing(conn: sqlite3.Connection, listing_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()


def _unit(row: sqlite3.Row) -> str | None:
    fields = json.loads(row["fields"])
    return fields["quantity"]["unit"] if "quantity" in fields else None


def _left(row: sqlite3.Row) -> Decimal:
    return max(ZERO, capacity(row) - dec(row["committed"]))


def _claim_row(conn: sqlite3.Connection, claim_id: str) -> sqlite3.Row:
    """A claim this node shows (hidden claims and blocked parties' are not found)."""
    row = visibility.claim(conn, claim_id)
    if row is None:
        raise NotFound("not-found", f"no claim with id {claim_id} on this node")
    return row


def _live_problem(row: sqlite3.Row, now: int) -> Conflict | None:
    state = status(row, now)
    if state in ("withdrawn", "expired"):
        return Conflict(state, f"this {row['kind']} is {state}")
    if _left(row) <= 0:
        return Conflict("nothing-available", f"this {row['kind']} is {state}: nothing "
                        "is left to claim")
    return None


def _amount(row: sqlite3.Row, value: str, unit: str | None) -> str:
    """A requested quantity in any unit that converts to the listing's; returns the
    decimal text in the listing's unit."""
    return in_listing_unit(row, value, unit)


# -- writes -----------------------------------------------------------------------------------


def claim_body(body: Any) -> dict[str, Any]:
    """Check a claim's JSON before the write transaction (422s)."""
    body = optional_object(body, ("quantity", "message", "private", *LINKS))
    out: dict[str, Any] = {"private": _private(body.get("private")),
                           "message": _text(body, "message", 1000)}
    if "quantity" in body:
        out["quantity"] = _quantity(body["quantity"])
    links = [k for k in LINKS if k in body]
    if len(links) > 1:
        raise Invalid("invalid-field", "name for_need (on a claim on an offer) or "
                      "from_offer (on a claim on a need), not both", field=links[1])
    for key in links:
        if not isinstance(body[key], str):
            raise Invalid("invalid-field", f"{key} is a listing id (64 hex)", field=key)
        try:
            parse_entry_id(body[key])
        except ProtocolError:
            raise Invalid("invalid-field", f"{key} is a listing id (64 hex)",
                          field=key) from None
        out["link"] = (key, body[key])
    return out


def make_claim(ledger: Ledger, conn: sqlite3.Connection, kind: str | None, listing_id: str,
               body: dict[str, Any], now: int):
    """Append a claim on another node's offer or need (checked in this transaction)."""
    row = visibility.listing(conn, listing_id, kind)
    if row is None:  # also when hidden here or its author is blocked
        raise NotFound("not-found", f"no {kind or 'listing'} with id {listing_id} on "
                       "this node")
    me = ledger.identity.node_id
    if row["author"] == me:
        raise Invalid("own-listing", f"this {row['kind']} is this node's own; claims "
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
            raise Conflict("not-enough", f"asked for {value} but only {number(str(left))} "
                           f"{_unit(row)} are available", field="quantity")
        content["quantity"] = {"value": value, "unit": _unit(row)}
    if body.get("link") is not None:
        attach(ledger, conn, row, *body["link"], content, now)
    if body.get("message") is not None:
        content["message"] = body["message"]
    if body.get("private"):
        content["sealed"] = seal_to(ledger, conn, row["author"], body["private"])
    return ledger.append_local(conn, "claim", content)


def response_body(action: str, body: Any) -> dict[str, Any]:
    allowed = {"accept": ("quantity", "private"), "decline": ("reason",),
               "fulfil": ("quantity",)}[action]
    body = optional_object(body, allowed)
    out: dict[str, Any] = {}
    if "quantity" in body:
        out["quantity"] = _quantity(body["quantity"])
    if "private" in body:
        out["private"] = _private(body["private"])
    if "reason" in body:
        out["reason"] = _text(body, "reason", 500)
    return out


def respond(ledger: Ledger, conn: sqlite3.Connection, action: str, claim_id: str,
            body: dict[str, Any], now: int):
    """Append an accept, decline or fulfil for a claim (checked in this transaction)."""
    claim = _claim_row(conn, claim_id)
    me = ledger.identity.node_id
    row = _listing(conn, claim["target"])
    if row is None:
        raise Conflict("listing-unknown", "the listing this claim is about has not "
                       "arrived at this node")
    owner = row["author"]
    if claim["owner"] != owner:
        raise Conflict("not-a-claim-on-it", "this claim names another owner than the "
                       "listing's; it cannot be answered")
    state = claim_status(conn, claim)
    content: dict[str, Any] = {"target": bytes.fromhex(claim["target"]),
                               "claim": bytes.fromhex(claim_id),
                               "claim_author": parse_node_id(claim["claimant"])}
    if action in ("accept", "decline"):
        if owner != me:
            raise Forbidden("not-owner", f"only the {row['kind']}'s owner ({owner}) can "
                            f"{action} a claim on it")
        if state["status"] != "pending":
            raise Conflict("not-pending", f"this claim is already {state['status']}")
    if action == "accept":
        problem = _live_problem(row, now)
        if problem is not None:
            raise problem
        if _unit(row) is not None:
            left = free(conn, row)  # not what our own pending claims promised elsewhere
            if left <= 0:
                raise Conflict("nothing-available", f"what is left of this {row['kind']} "
                               "is promised by this node's own pending claims that name it")
            if "quantity" in body:
                value = Decimal(_amount(row, *body["quantity"]))
                if value > left:
                    raise Conflict("not-enough", f"only {number(str(left))} {_unit(row)} "
                                   f"are still available, not {number(str(value))}",
                                   field="quantity")
            else:
                asked = in_unit(quantity_of(conn, claim_id), _unit(row))
                value = min(asked if asked is not None else left, left)
            # Always explicit: what this accept commits never depends on the claim arriving.
            content["quantity"] = {"value": format(value.normalize(), "f"), "unit": _unit(row)}
        elif "quantity" in body:
            _amount(row, *body["quantity"])
        if body.get("private"):
            content["sealed"] = seal_to(ledger, conn, claim["claimant"], body["private"])
    elif action == "decline":
        if body.get("reason") is not None:
            content["reason"] = body["reason"]
    else:  # fulfil
        if me not in (owner, claim["claimant"]):
            raise Forbidden("not-a-party", "only the claimant or the owner can record "
                            "the hand-over")
        if state["status"] not in ("accepted", "fulfilled"):
            raise Conflict("not-accepted", f"this claim is {state['status']}; only an "
                           "accepted claim can be fulfilled")
        if any(r["kind"] == "fulfil" and r["author"] == me for r in state["responses"]):
            raise Conflict("already-fulfilled", "this node already recorded the "
                           "hand-over of this claim")
        if "quantity" in body:
            value = _amount(row, *body["quantity"])
            content["quantity"] = {"value": value, "unit": _unit(row)}
    return ledger.append_local(conn, action, content)


# -- claim JSON ---------------------------------------------------------------------------------


def _claim_unit(conn: sqlite3.Connection, claim: sqlite3.Row,
                listing: sqlite3.Row | None) -> str | None:
    row = conn.execute("SELECT payload FROM entries WHERE id = ?",
                       (bytes.fromhex(claim["id"]),)).fetchone()
    if row is not None and row["payload"] is not None:
        quantity = decode(row["payload"]).get("quantity")
        if quantity:
            return quantity["unit"]
    return _unit(listing) if listing is not None else None


def claim_json(conn: sqlite3.Connection, ledger: Ledger, claim: sqlite3.Row,
               show_private: bool, keys: Keyring | None = None) -> dict[str, Any]:
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
        # the claimant's own listing this claim fills or draws on (spec §9.6)
        **{k: (d["target"] if (d := state["draw"]) is not None and d["kind"] == k else None)
           for k in LINKS},
    }
    me = ledger.identity.node_id
    if show_private and me in (claim["claimant"], claim["owner"]):
        # Each box must come from the author of its entry to the other party, with the
        # keys of their latest profiles: a box copied into another claim shows nothing.
        keys = keys if keys is not None else Keyring(conn)
        out["private"] = open_box(ledger, keys, claim["sealed"], claim["claimant"],
                                  claim["owner"])
        accept = next((r for r in sorted(state["responses"], key=lambda r: r["seq"])
                       if r["kind"] == "accept" and r["author"] == claim["owner"]), None)
        out["reply_private"] = open_box(ledger, keys, accept["sealed"], claim["owner"],
                                        claim["claimant"]) if accept is not None else None
    return out


def list_claims(conn: sqlite3.Connection, ledger: Ledger, *, direction: str = "all",
                state: str | None = None, target: str | None = None, limit: int = 50,
                cursor: tuple[int, str] | None = None, show_private: bool = False
                ) -> tuple[list[dict[str, Any]], str | None]:
    """Claims newest first; ``state`` filters on the derived status."""
    me = ledger.identity.node_id
    where, params = [visibility.claim_visible("claims")], []
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
    keys = Keyring(conn)
    for row in conn.execute(f"SELECT * FROM claims WHERE {' AND '.join(where)} "
                            "ORDER BY created DESC, id DESC", params):
        item = claim_json(conn, ledger, row, show_private, keys)
        if state is not None and item["status"] != state:
            continue
        if len(out) == limit:
            return out, encode_cursor([last["created"], last["id"]])  # type: ignore[index]
        out.append(item)
        last = row
    return out, None


def get_claim(conn: sqlite3.Connection, ledger: Ledger, claim_id: str,
              show_private: bool) -> dict[str, Any]:
    return claim_json(conn, ledger, _claim_row(conn, claim_id), show_private)


CLAIM_PARAMS = frozenset({"direction", "status", "target", "limit", "cursor"})


def claim_filters(q: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters of a claim list to `list_claims` keywords (limit aside)."""
    for key in q:
        if key not in CLAIM_PARAMS | {"limit"}:
            raise BadParameter("unknown-parameter", f"unknown query parameter {key!r}; "
                               f"allowed: {', '.join(sorted(CLAIM_PARAMS))}", field=key)
    direction = q.get("direction", "all")
    if direction not in DIRECTIONS:
        raise BadParameter("invalid-parameter", f"direction must be one of "
                           f"{', '.join(DIRECTIONS)}", field="direction")
    state = q.get("status")
    if state is not None and state not in CLAIM_STATUSES:
        raise BadParameter("invalid-parameter", f"status must be one of "
                           f"{', '.join(CLAIM_STATUSES)}", field="status")
    target = q.get("target")
    if target is not None:
        try:
            parse_entry_id(target)
        except ProtocolError:
            raise BadParameter("invalid-parameter", "target is a listing id (64 hex)",
                               field="target") from None
    cursor = tuple(decode_cursor(q["cursor"], (int, str))) if "cursor" in q else None
    return {"direction": direction, "state": state, "target": target, "cursor": cursor}
