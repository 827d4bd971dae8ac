"""The event journal: what happened, in commit order, for SSE replay and webhooks.

Events are written in the same transaction as the state change they describe, so a
client resuming with Last-Event-ID never misses one and never sees one that rolled back.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

EVENT_TYPES = ("listing", "match", "claim")


def emit(conn: sqlite3.Connection, type_: str, data: dict[str, Any]) -> None:
    conn.execute("INSERT INTO events (type, data, created) VALUES (?, ?, ?)",
                 (type_, json.dumps(data, separators=(",", ":")), int(time.time() * 1000)))


def page(conn: sqlite3.Connection, after: int, limit: int, now: int,
         types: frozenset[str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Events with id > ``after`` in commit order, as clients see them.

    Returns (id of the last event scanned, the events among them of ``types``), so a
    filtered reader moves past events it does not want without reading them again. Each
    event is ``{id, type, created, data}``; a ``listing`` event's data also carries
    ``listing``: the listing as GET /api/v1/offers/{id} shows it *now* (null once it is
    erased, hidden by moderation or its origin blocked).
    """
    from .listing import rfc3339, to_json

    rows = conn.execute("SELECT id, type, data, created FROM events WHERE id > ? ORDER BY id "
                        "LIMIT ?", (after, limit)).fetchall()
    if not rows:
        return after, []
    out = [{"id": r["id"], "type": r["type"], "created": rfc3339(r["created"]),
            "data": json.loads(r["data"])}
           for r in rows if types is None or r["type"] in types]
    wanted = {e["data"]["id"] for e in out if e["type"] == "listing"}
    if wanted:
        marks = ",".join("?" * len(wanted))
        listings = {r["id"]: to_json(r, now) for r in conn.execute(
            f"SELECT * FROM listings WHERE id IN ({marks}) AND hidden = 0 AND author NOT IN "
            f"(SELECT author FROM blocks)", tuple(wanted))}
        for e in out:
            if e["type"] == "listing":
                e["data"]["listing"] = listings.get(e["data"]["id"])
    return rows[-1]["id"], out


def head(conn: sqlite3.Connection) -> int:
    """The id of the newest event ever committed (ids are never reused)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return row[0] if row else 0
