"""This node's own moderation: blocks of authors, hiding or erasing any entry, retention.

A moderator's hide or erase is this node's decision and is never replicated; an author's
`redact` (services/listings.py) travels to every honest node. Erasing keeps the header,
so the log still verifies (spec §9.3).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from protocol import ProtocolError, parse_entry_id, parse_node_id

from ..state.erasure import erase_many, erase_payload
from ..state.rows import listing_event
from ..store.ledger import Ledger
from .errors import Conflict, Invalid, NotFound
from .values import json_object, rfc3339

ACTIONS = ("hide", "erase")


def _fields(body: Any, allowed: dict[str, bool]) -> dict[str, Any]:
    """Check a JSON object against {field: required}, and its optional reason."""
    body = json_object(body, allowed, [k for k, required in allowed.items() if required])
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise Invalid("invalid-field", "reason is a string of at most 500 characters",
                      field="reason")
    return body


def reason_of(body: Any) -> str:
    """The optional reason of a redact request (its body may be absent)."""
    return "" if body is None else _fields(body, {"reason": False}).get("reason", "")


# -- blocks ---------------------------------------------------------------------------------


def block(ledger: Ledger, conn: sqlite3.Connection, body: Any, now: int) -> dict[str, Any]:
    """Block an author: its listings leave lists and matches, its log is no longer taken."""
    body = _fields(body, {"author": True, "reason": False})
    try:
        author = parse_node_id(body["author"])
    except ProtocolError as exc:
        raise Invalid("invalid-field", exc.detail, field="author") from None
    if author == ledger.identity.public:
        raise Invalid("invalid-field", "a node cannot block itself", field="author")
    reason = body.get("reason", "")
    conn.execute("INSERT INTO blocks (author, reason, created) VALUES (?, ?, ?) "
                 "ON CONFLICT (author) DO UPDATE SET reason = excluded.reason",
                 (body["author"], reason, now))
    for row in conn.execute("SELECT id FROM listings WHERE author = ?", (body["author"],)):
        listing_event(conn, row["id"], "blocked")
    return {"author": body["author"], "reason": reason, "created": rfc3339(now)}


def blocks(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [{"author": r["author"], "reason": r["reason"], "created": rfc3339(r["created"])}
            for r in conn.execute("SELECT author, reason, created FROM blocks "
                                  "ORDER BY created")]


def unblock(conn: sqlite3.Connection, author: str) -> None:
    if not conn.execute("DELETE FROM blocks WHERE author = ?", (author,)).rowcount:
        raise NotFound("not-found", f"{author[:80]} is not blocked")
    for row in conn.execute("SELECT id FROM listings WHERE author = ?", (author,)):
        listing_event(conn, row["id"], "unblocked")


# -- hide and erase any entry ---------------------------------------------------------------


def moderate(conn: sqlite3.Connection, body: Any, now: int) -> dict[str, Any]:
    body = _fields(body, {"id": True, "action": True, "reason": False})
    try:
        target = parse_entry_id(body["id"])
    except ProtocolError as exc:
        raise Invalid("invalid-field", exc.detail, field="id") from None
    if body["action"] not in ACTIONS:
        raise Invalid("invalid-field", "action is 'hide' (reversible) or 'erase' (drops the "
                      "payload here for good)", field="action")
    row = conn.execute("SELECT author FROM entries WHERE id = ?", (target,)).fetchone()
    if row is None:
        raise NotFound("not-found", f"no entry {body['id']} on this node")
    reason = body.get("reason", "")
    conn.execute("INSERT INTO moderation (id, action, reason, created) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET action = excluded.action, "
                 "reason = excluded.reason", (body["id"], body["action"], reason, now))
    if body["action"] == "hide":
        conn.execute("UPDATE listings SET hidden = 1 WHERE id = ?", (body["id"],))
        listing_event(conn, body["id"], "hidden")
    else:
        erase_payload(conn, target, row["author"])
    return {"id": body["id"], "action": body["action"], "reason": reason,
            "created": rfc3339(now)}


def decisions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [{**dict(r), "created": rfc3339(r["created"])} for r in conn.execute(
        "SELECT id, action, reason, created FROM moderation ORDER BY created")]


def unhide(conn: sqlite3.Connection, entry_id: str) -> None:
    row = conn.execute("SELECT action FROM moderation WHERE id = ?", (entry_id,)).fetchone()
    if row is None:
        raise NotFound("not-found", f"no moderation of {entry_id[:80]}")
    if row["action"] == "erase":
        raise Conflict("erased", "an erased payload cannot come back on this node")
    conn.execute("DELETE FROM moderation WHERE id = ?", (entry_id,))
    if conn.execute("UPDATE listings SET hidden = 0 WHERE id = ?", (entry_id,)).rowcount:
        listing_event(conn, entry_id, "unhidden")


# -- retention ------------------------------------------------------------------------------


def erase_expired(conn: sqlite3.Connection, retention_days: int, now: int) -> int:
    """Erase payloads of listings expired more than retention_days ago (locally), with
    their updates, the claims on them and the answers to those (one index scrub)."""
    cutoff = now - retention_days * 86_400_000
    rows = conn.execute("SELECT id, author FROM listings WHERE available_until < ?",
                        (cutoff,)).fetchall()
    found, _ = erase_many(conn, [(bytes.fromhex(r["id"]), parse_node_id(r["author"]))
                                 for r in rows])
    return found
