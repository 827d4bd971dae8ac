"""The event journal as clients see it: SSE streams and webhook deliveries read pages."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..state.events import EVENT_TYPES
from .listings import to_json
from .values import rfc3339

__all__ = ["EVENT_TYPES", "page"]


def page(conn: sqlite3.Connection, after: int, limit: int, now: int,
         types: frozenset[str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Events with id > ``after`` in commit order, as clients see them.

    Returns (id of the last event scanned, the events among them of ``types``), so a
    filtered reader moves past events it does not want without reading them again. Each
    event is ``{id, type, created, data}``; a ``listing`` event's data also carries
    ``listing``: the listing as GET /api/v1/offers/{id} shows it *now* (null once it is
    erased, hidden by moderation or its origin blocked).
    """
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
