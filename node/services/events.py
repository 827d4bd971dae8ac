"""The event journal as clients see it: SSE streams and webhook deliveries read pages."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..state import visibility
from ..state.events import EVENT_TYPES
from .listings import to_json
from .values import rfc3339

__all__ = ["EVENT_TYPES", "page"]

# Changes that tell a client to drop a listing: sent even though it is no longer shown.
GONE = frozenset({"hidden", "blocked", "erased"})


def _shown(event: dict[str, Any], view: visibility.View) -> bool:
    """Whether this node shows the event now (state/visibility.py)."""
    data = event["data"]
    if event["type"] == "listing":
        return data.get("change") in GONE or view.listing(data["id"], data.get("origin"))
    if event["type"] == "match":
        if "matches" not in data:  # one pair per event (journals written before bounds)
            return view.listing(data["need"]) and view.listing(data["offer"])
        pairs = [p for p in data["matches"]
                 if view.listing(p["need"]) and view.listing(p["offer"])]
        data["count"] -= len(data["matches"]) - len(pairs)
        data["matches"] = pairs
        return bool(pairs) and view.listing(data["listing"])
    if event["type"] == "claim":
        return view.claim(data["id"], data["target"], data.get("claimant", ""),
                          data.get("owner", ""), data.get("by", ""))
    return True


def page(conn: sqlite3.Connection, after: int, limit: int, now: int,
         types: frozenset[str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Events with id > ``after`` in commit order, as clients see them.

    Returns (id of the last event scanned, the events among them of ``types``), so a
    filtered reader moves past events it does not want without reading them again. Each
    event is ``{id, type, created, data}``; a ``listing`` event's data also carries
    ``listing``: the listing as GET /api/v1/offers/{id} shows it *now* (null once it is
    erased, hidden by moderation or its origin blocked). Events about what this node does
    not show (a hidden or blocked listing, its matches and claims) are left out, except
    the change that hid it, so a client knows to drop it.
    """
    rows = conn.execute("SELECT id, type, data, created FROM events WHERE id > ? ORDER BY id "
                        "LIMIT ?", (after, limit)).fetchall()
    if not rows:
        return after, []
    out = [{"id": r["id"], "type": r["type"], "created": rfc3339(r["created"]),
            "data": json.loads(r["data"])}
           for r in rows if types is None or r["type"] in types]
    asked: set[str] = set()
    for e in out:
        data = e["data"]
        for item in (data, *data.get("matches", ())):
            asked.update(item[k] for k in ("id", "need", "offer", "target", "listing")
                         if isinstance(item.get(k), str))
    view = visibility.view(conn, asked)
    out = [e for e in out if _shown(e, view)]
    wanted = {e["data"]["id"] for e in out if e["type"] == "listing"}
    if wanted:
        marks = ",".join("?" * len(wanted))
        listings = {r["id"]: to_json(r, now) for r in conn.execute(
            f"SELECT * FROM listings l WHERE id IN ({marks}) AND "
            f"{visibility.listing_visible('l')}", tuple(wanted))}
        for e in out:
            if e["type"] == "listing":
                e["data"]["listing"] = listings.get(e["data"]["id"])
    return rows[-1]["id"], out
