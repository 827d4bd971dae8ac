"""Outbound webhooks: which URLs receive which events, and how far each has got.

The delivery worker (workers/webhooks.py) POSTs each event of the journal, in order, to
every webhook. Request: ``POST <url>`` with the JSON body ``{id, type, created, data}``
(the same object an SSE message carries) and the headers ``X-Aidmesh-Event-Id``,
``X-Aidmesh-Event-Type``, ``X-Aidmesh-Webhook-Id`` and ``X-Aidmesh-Signature:
sha256=<hex HMAC-SHA256(secret, body bytes)>``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from typing import Any

from ..state import events
from ..store.db import events_head
from ..store.ledger import now_ms
from .errors import Invalid, NotFound
from .urls import check_http_url
from .values import json_object, rfc3339

MAX_WEBHOOKS = 100


def check_url(url: Any) -> str:
    return check_http_url(url, "give the receiver's URL, e.g. https://example.org/hook")


def check_types(types: Any) -> list[str] | None:
    if types is None:
        return None
    if (not isinstance(types, list) or not types
            or not all(isinstance(t, str) and t in events.EVENT_TYPES for t in types)):
        raise Invalid("invalid-field", f"types is a non-empty list of "
                      f"{', '.join(events.EVENT_TYPES)}", field="types")
    return sorted(set(types))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- the webhooks table ---------------------------------------------------------------------


def as_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "url": row["url"],
            "types": row["types"].split(",") if row["types"] else None,
            "created": rfc3339(row["created"]), "delivered": row["delivered"],
            "failures": row["failures"], "last_error": row["last_error"],
            "last_error_at": rfc3339(row["last_error_at"]),
            "last_success": rfc3339(row["last_success"])}


def create(conn: sqlite3.Connection, body: Any) -> tuple[dict[str, Any], str]:
    """A new webhook, delivering events committed from now on; returns (row, secret)."""
    body = json_object(body, ("types", "url"))
    url, types = check_url(body.get("url")), check_types(body.get("types"))
    count = conn.execute("SELECT count(*) FROM webhooks").fetchone()[0]
    if count >= MAX_WEBHOOKS:
        raise Invalid("invalid-field", f"this node already has {MAX_WEBHOOKS} webhooks; "
                      "delete one first", field="url")
    hook_id, secret = secrets.token_hex(8), secrets.token_hex(32)
    conn.execute("INSERT INTO webhooks (id, url, secret, created, delivered, types) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 (hook_id, url, secret, now_ms(), events_head(conn),
                  ",".join(types) if types else None))
    row = conn.execute("SELECT * FROM webhooks WHERE id = ?", (hook_id,)).fetchone()
    return as_json(row), secret


def list_all(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [as_json(r) for r in conn.execute("SELECT * FROM webhooks ORDER BY created, id")]


def delete(conn: sqlite3.Connection, hook_id: str) -> None:
    if not conn.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,)).rowcount:
        raise NotFound("not-found", f"no webhook with id {hook_id[:80]!r}")


def rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM webhooks").fetchall()


def delivered(conn: sqlite3.Connection, hook_id: str, event_id: int, now: int | None) -> None:
    """Move a webhook's cursor: an event handed over (``now`` given) or skipped."""
    if now is None:
        conn.execute("UPDATE webhooks SET delivered = max(delivered, ?) WHERE id = ?",
                     (event_id, hook_id))
    else:
        conn.execute("UPDATE webhooks SET delivered = max(delivered, ?), failures = 0, "
                     "last_success = ? WHERE id = ?", (event_id, now, hook_id))


def failed(conn: sqlite3.Connection, hook_id: str, error: str, now: int) -> None:
    conn.execute("UPDATE webhooks SET failures = failures + 1, last_error = ?, "
                 "last_error_at = ? WHERE id = ?", (error, now, hook_id))


