"""Listing queries: filters, full-text search and keyset pagination over the projection."""

from __future__ import annotations

import base64
import json
import math
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from .visibility import listing_visible

STATUSES = ("open", "committed", "fulfilled", "expired", "withdrawn", "all")


class QueryError(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


@dataclass
class ListingQuery:
    kind: str
    q: str | None = None
    category: str | None = None
    near: tuple[float, float] | None = None
    radius_km: float = 10.0
    status: str = "open"
    origin: str = "all"  # "local", "all" or a node id
    updated_since: int | None = None
    cursor: tuple[int, str] | None = None
    limit: int = 50


def fts_query(text: str) -> str:
    """Free text to a safe FTS5 query: every word must appear, as a word prefix. Text
    without a word ('""', '?') asks for no word: "" (no text filter), not an error, since
    no schema pattern could say which characters make a word the same way in every engine."""
    return " ".join(f'"{w}"*' for w in re.findall(r"\w+", text)[:20])


def encode_cursor(updated: int, entry_id: str) -> str:
    raw = json.dumps([updated, entry_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Cursors this node hands out are a few short values; anything longer is not one of ours
# (and a deeply nested one would exhaust the JSON decoder's recursion).
MAX_CURSOR_CHARS = 256
CURSOR_INT = 2**53  # timestamps and offsets: far below SQLite's 64-bit integers


def load_cursor(text: str, shape: tuple[type, ...]) -> list[Any]:
    """An opaque cursor (base64url of a JSON array) checked against ``shape``: a list of
    ints within +-2^53 and strings; QueryError for anything else."""
    try:
        if len(text) > MAX_CURSOR_CHARS:
            raise ValueError
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(value, list) or len(value) != len(shape):
            raise ValueError
        for item, kind in zip(value, shape, strict=True):
            if not isinstance(item, kind) or isinstance(item, bool):
                raise ValueError
            if isinstance(item, int) and not -CURSOR_INT <= item <= CURSOR_INT:
                raise ValueError
    except (ValueError, TypeError, RecursionError):
        raise QueryError("cursor", "cursor is not one this node handed out; start without "
                                   "it") from None
    return value


def decode_cursor(text: str) -> tuple[int, str]:
    updated, entry_id = load_cursor(text, (int, str))
    return updated, entry_id


def run(conn: sqlite3.Connection, query: ListingQuery, now: int
        ) -> tuple[list[sqlite3.Row], str | None]:
    # Hidden by this node's moderators, or by a blocked author: never listed.
    where = ["l.kind = :kind", listing_visible("l")]
    params: dict[str, Any] = {"kind": query.kind, "now": now, "limit": query.limit + 1}
    words = fts_query(query.q) if query.q else ""
    if words:
        where.append("l.rowid IN (SELECT rowid FROM listings_fts WHERE listings_fts MATCH :q)")
        params["q"] = words
    if query.category:
        where.append("(l.category = :cat OR substr(l.category, 1, :catlen) = :catslash)")
        params.update(cat=query.category, catslash=query.category + "/",
                      catlen=len(query.category) + 1)
    if query.near is not None:
        lat, lng = query.near
        dlat = query.radius_km / 111.0
        # Cheap bounding box first; the exact (Python) distance only for what is inside.
        box = "l.lat BETWEEN :lat0 AND :lat1"
        params.update(lat=lat, lng=lng, radius=query.radius_km, lat0=lat - dlat,
                      lat1=lat + dlat)
        if abs(lat) + dlat < 89:
            dlng = query.radius_km / (111.0 * math.cos(math.radians(abs(lat) + dlat)))
            if dlng < 180 and -180 <= lng - dlng and lng + dlng <= 180:
                box += " AND l.lng BETWEEN :lng0 AND :lng1"
                params.update(lng0=lng - dlng, lng1=lng + dlng)
        where.append(f"{box} AND dist_km(l.lat, l.lng, :lat, :lng) <= :radius")
    live = "l.withdrawn = 0 AND (l.available_until IS NULL OR l.available_until >= :now)"
    fulfilled = "CAST(l.fulfilled AS REAL) >= CAST(l.committed AS REAL)"
    if query.status == "open":  # something is still available: open or partly committed
        where.append(f"{live} AND l.available > 0")
    elif query.status == "committed":
        where.append(f"{live} AND l.available <= 0 AND NOT {fulfilled}")
    elif query.status == "fulfilled":
        where.append(f"{live} AND l.available <= 0 AND {fulfilled}")
    elif query.status == "expired":
        where.append("l.withdrawn = 0 AND l.available_until < :now")
    elif query.status == "withdrawn":
        where.append("l.withdrawn = 1")
    if query.origin == "local":
        where.append("l.local = 1")
    elif query.origin != "all":
        where.append("l.author = :origin")
        params["origin"] = query.origin
    if query.updated_since is not None:
        where.append("l.updated >= :since")
        params["since"] = query.updated_since
    if query.cursor is not None:
        where.append("(l.updated < :cu OR (l.updated = :cu AND l.id < :ci))")
        params.update(cu=query.cursor[0], ci=query.cursor[1])
    # Pages come in (updated, id) order: walking that index and stopping at the page size
    # beats collecting every match of a broad filter and sorting it (measured at 100k
    # offers: a wide area 150 ms -> under 10 ms); SQLite's planner, without statistics,
    # would rather sort.
    hint = "INDEXED BY listings_updated "
    sql = (f"SELECT l.* FROM listings l {hint}WHERE {' AND '.join(where)} "
           "ORDER BY l.updated DESC, l.id DESC LIMIT :limit")
    rows = conn.execute(sql, params).fetchall()
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = encode_cursor(rows[-1]["updated"], rows[-1]["id"])
    return rows, next_cursor
