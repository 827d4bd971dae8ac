"""Matching: which needs and offers fit each other (category, time window, radius).

Kept incrementally per listing as the projection folds it; never truth, rebuilt on
reindex like every other row.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from protocol.taxonomy import category_matches

from ..store.db import dist_km
from .events import emit

DEFAULT_RADIUS_KM = 10


def fits(need: sqlite3.Row, offer: sqlite3.Row) -> tuple[bool, float | None]:
    if need["author"] == offer["author"]:
        return False, None
    if not category_matches(need["category"], offer["category"]):
        return False, None
    start = max(need["available_from"] or 0, offer["available_from"] or 0)
    end = min(need["available_until"] or 2**53, offer["available_until"] or 2**53)
    if start > end:
        return False, None
    distance = None
    if need["lat"] is not None and offer["lat"] is not None:
        distance = dist_km(need["lat"], need["lng"], offer["lat"], offer["lng"])
        radius = need["radius_km"] if need["radius_km"] is not None else DEFAULT_RADIUS_KM
        if distance > radius:
            return False, None
    return True, distance


def _box(lat: float, lng: float, radius_km: float) -> dict[str, float]:
    """Latitude (and, away from the poles and the antimeridian, longitude) bounds."""
    dlat = radius_km / 110.0 + 0.01
    box = {"lat0": lat - dlat, "lat1": lat + dlat}
    if abs(lat) + dlat < 89:
        dlng = dlat / math.cos(math.radians(abs(lat) + dlat))
        if -180 <= lng - dlng and lng + dlng <= 180:
            box.update(lng0=lng - dlng, lng1=lng + dlng)
    return box


def _prefixes(category: str) -> list[str]:
    parts = category.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def rematch(conn: sqlite3.Connection, listing_id: str, now: int, *, fresh: bool = False
            ) -> None:
    """Recompute the matches of one listing against its counterparts (incremental).

    Candidates come from the category index: a need for `food` meets `food/...` offers;
    an offer of `food/bread` meets needs for `food` or `food/bread`. ``fresh``: the
    listing was just inserted, so it has no matches yet to compare with.
    """
    row = conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()
    old: set[tuple[str, str]] = set() if fresh else {(r[0], r[1]) for r in conn.execute(
        "SELECT need, offer FROM matches WHERE need = ? UNION ALL "
        "SELECT need, offer FROM matches WHERE offer = ?", (listing_id, listing_id))}
    if row is None or row["withdrawn"]:
        conn.execute("DELETE FROM matches WHERE need = ? OR offer = ?", (listing_id, listing_id))
        return
    # SQL narrows candidates by category (index), author, time window and a bounding box
    # around the need's radius; _fits then applies the exact rules to the few left.
    params: dict[str, Any] = {
        "author": row["author"], "start": row["available_from"] or 0,
        "end": row["available_until"] or 2**53, "lat": row["lat"], "lng": row["lng"]}
    where = ["withdrawn = 0", "author != :author", "coalesce(available_from, 0) <= :end",
             "coalesce(available_until, 9007199254740992) >= :start"]
    if row["kind"] == "need":
        where.insert(0, "kind = 'offer' AND (category = :cat OR (category > :lo AND "
                        "category < :hi))")
        # every path below `cat/` sorts between 'cat/' and 'cat0' ('0' follows '/')
        params.update(cat=row["category"], lo=row["category"] + "/", hi=row["category"] + "0")
        radius = row["radius_km"] if row["radius_km"] is not None else DEFAULT_RADIUS_KM
    else:
        prefixes = _prefixes(row["category"])
        names = [f":p{i}" for i in range(len(prefixes))]
        params.update({f"p{i}": p for i, p in enumerate(prefixes)})
        where.insert(0, f"kind = 'need' AND category IN ({', '.join(names)})")
        radius = conn.execute(
            f"SELECT max(coalesce(radius_km, {DEFAULT_RADIUS_KM})) FROM listings WHERE "
            f"kind = 'need' AND category IN ({', '.join(names)})", params).fetchone()[0]
        if radius is None and not old:
            return  # no need in these categories at all: nothing to match or unmatch
    if row["lat"] is not None:
        box = _box(row["lat"], row["lng"], radius)
        params.update(box)
        inside = "lat BETWEEN :lat0 AND :lat1"
        if "lng0" in box:
            inside += " AND lng BETWEEN :lng0 AND :lng1"
        where.append(f"(lat IS NULL OR ({inside}))")
    candidates = conn.execute(f"SELECT * FROM listings WHERE {' AND '.join(where)}", params)
    pairs = [(row, c) if row["kind"] == "need" else (c, row) for c in candidates]
    new: dict[tuple[str, str], float | None] = {}
    for need, offer in pairs:
        ok, distance = fits(need, offer)
        if ok:
            new[(need["id"], offer["id"])] = distance
    for key in old - new.keys():
        conn.execute("DELETE FROM matches WHERE need = ? AND offer = ?", key)
    for key, distance in new.items():
        cur = conn.execute(
            "INSERT INTO matches (need, offer, distance_km, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (need, offer) DO UPDATE SET distance_km = excluded.distance_km",
            (*key, distance, now))
        if key not in old and cur.rowcount:
            emit(conn, "match", {"need": key[0], "offer": key[1], "distance_km": distance})
