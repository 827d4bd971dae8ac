"""Matches: needs and offers that fit each other, both still live, best first."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from protocol import ProtocolError
from protocol.identity import parse_entry_id

from ..state.visibility import listing_visible
from .errors import BadParameter
from .listings import parse_origin, to_json
from .pages import decode_cursor, encode_cursor

URGENCY_RANK = {"critical": 4, "high": 3, "normal": 2, "low": 1}
MATCH_PARAMS = frozenset({"need", "offer", "origin", "local_only", "limit", "cursor"})


def _listing(conn: sqlite3.Connection, listing_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()


def _live(alias: str) -> str:
    return (f"{alias}.withdrawn = 0 AND {listing_visible(alias)} AND "
            f"({alias}.available_until IS NULL OR {alias}.available_until >= :now) AND "
            f"{alias}.available > 0")


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
    return out, encode_cursor([offset + limit]) if more else None



def match_filters(q: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters of a match list to `list_matches` keywords (limit aside)."""
    for key in q:
        if key not in MATCH_PARAMS:
            raise BadParameter("unknown-parameter", f"unknown query parameter {key!r}; "
                               f"allowed: {', '.join(sorted(MATCH_PARAMS))}", field=key)
    out: dict[str, Any] = {}
    for key in ("need", "offer"):
        out[key] = q.get(key)
        if out[key] is not None:
            try:
                parse_entry_id(out[key])
            except ProtocolError:
                raise BadParameter("invalid-parameter", f"{key} is a listing id (64 hex)",
                                   field=key) from None
    out["origin"] = parse_origin(q.get("origin", "all"))
    local_only = q.get("local_only", "false")
    if local_only not in ("true", "false"):
        raise BadParameter("invalid-parameter", "local_only is true or false",
                           field="local_only")
    out["local_only"] = local_only == "true"
    out["offset"] = max(0, decode_cursor(q["cursor"], (int,))[0]) if "cursor" in q else 0
    return out
