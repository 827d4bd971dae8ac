"""Exchanges between groups and matching, folded from the logs (spec §9.6).

Only a listing's owner commits its quantity, and accepts are folded in the owner's log
order, each taking at most what is still available: every node computes the same
allocation, and concurrent claims can never over-commit. Responses may arrive before
the claim they answer (they come from other logs); the fold is written so the final
state does not depend on arrival order.
"""

from __future__ import annotations

import math
import sqlite3
from decimal import Decimal
from typing import Any

from protocol import Entry, decode
from protocol.identity import node_id
from protocol.taxonomy import category_matches

from ..store.db import dist_km
from .events import emit

DEFAULT_RADIUS_KM = 10
ZERO = Decimal(0)


def dec(text: str | None) -> Decimal:
    return Decimal(text) if text else ZERO


def text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def capacity(row: sqlite3.Row) -> Decimal:
    """A listing without a quantity counts as one unit, committed whole by one accept."""
    return dec(row["quantity"]) if row["quantity"] else Decimal(1)


def refresh_available(conn: sqlite3.Connection, listing_id: str) -> None:
    row = conn.execute("SELECT quantity, committed FROM listings WHERE id = ?",
                       (listing_id,)).fetchone()
    if row is not None:
        left = max(ZERO, capacity(row) - dec(row["committed"]))
        conn.execute("UPDATE listings SET available = ? WHERE id = ?", (float(left), listing_id))


def fold_claim(conn: sqlite3.Connection, entry: Entry, content: dict[str, Any],
               self_id: str) -> None:
    owner = node_id(content["target_author"])
    claim_id = entry.id.hex()
    conn.execute(
        "INSERT OR IGNORE INTO claims (id, claimant, target, owner, quantity, message, sealed, "
        "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (claim_id, entry.author_id, content["target"].hex(), owner,
         content["quantity"]["value"] if "quantity" in content else None,
         content.get("message"), content.get("sealed"), entry.header.timestamp))
    # Answers may have arrived first (they come from another log): the claim can change
    # what they commit (its quantity, whether it is a claim on that listing at all).
    for row in conn.execute("SELECT DISTINCT target FROM responses WHERE claim = ?",
                            (claim_id,)).fetchall():
        reallocate(conn, row["target"])
    if self_id in (owner, entry.author_id):
        emit(conn, "claim", {"id": claim_id, "change": "created", "target":
                             content["target"].hex(), "claimant": entry.author_id,
                             "owner": owner})


def fold_response(conn: sqlite3.Connection, entry: Entry, content: dict[str, Any],
                  self_id: str) -> None:
    """accept / decline / fulfil: record it, then recompute what its listing commits."""
    kind = entry.header.kind
    target = content["target"].hex()
    claim_id = content["claim"].hex()
    claimant = node_id(content["claim_author"])
    listing = conn.execute("SELECT author FROM listings WHERE id = ?", (target,)).fetchone()
    author = entry.author_id
    if kind in ("accept", "decline"):
        if listing is None or listing["author"] != author:
            return  # only the owner answers a claim (a listing we cannot see: ignore)
    elif listing is not None and author not in (claimant, listing["author"]):
        return  # only the two parties record a hand-over
    conn.execute(
        "INSERT OR IGNORE INTO responses (id, kind, author, target, claim, claimant, committed, "
        "sealed, seq, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.id.hex(), kind, author, target, claim_id, claimant,
         "0" if kind == "accept" else None, content.get("sealed"), entry.seq,
         entry.header.timestamp))
    reallocate(conn, target)
    committed = None
    if kind == "accept":
        committed = conn.execute("SELECT committed FROM responses WHERE id = ?",
                                 (entry.id.hex(),)).fetchone()["committed"]
    owner = listing["author"] if listing is not None else None
    if self_id in (claimant, owner, author):
        emit(conn, "claim", {"id": claim_id, "change": kind, "target": target,
                             "claimant": claimant, "by": author, "committed": committed})


def _asked(conn: sqlite3.Connection, response_id: str) -> Decimal | None:
    """The quantity an accept names (read from its payload; None if it names none)."""
    row = conn.execute("SELECT payload FROM entries WHERE id = ?",
                       (bytes.fromhex(response_id),)).fetchone()
    if row is None or row["payload"] is None:
        return None
    content = decode(row["payload"])
    quantity = content.get("quantity") if isinstance(content, dict) else None
    return dec(quantity["value"]) if quantity else None


def reallocate(conn: sqlite3.Connection, target: str) -> None:
    """Recompute a listing's commitments from every answer it has (spec §9.6).

    The owner's accepts are walked in its log order, each taking min(asked, still
    available); the result depends only on which entries are stored, never on the order
    they arrived in (a claim after its accept, a fulfil before the accept, an update of
    the quantity). A claim not seen yet counts as valid until it arrives.
    """
    listing = conn.execute("SELECT * FROM listings WHERE id = ?", (target,)).fetchone()
    if listing is None:
        return
    owner = listing["author"]
    cap = capacity(listing)
    total = fulfilled = ZERO
    answered: set[str] = set()
    rows = conn.execute(
        "SELECT id, kind, claim, claimant FROM responses WHERE target = ? AND author = ? "
        "AND kind IN ('accept', 'decline') ORDER BY seq", (target, owner)).fetchall()
    for r in rows:
        claim = conn.execute("SELECT claimant, target, owner, quantity FROM claims "
                             "WHERE id = ?", (r["claim"],)).fetchone()
        if claim is not None and (claim["target"] != target or claim["owner"] != owner
                                  or claim["claimant"] != r["claimant"]):
            if r["kind"] == "accept":
                conn.execute("UPDATE responses SET committed = '0' WHERE id = ?", (r["id"],))
            continue  # names a claim that is not on this listing
        first = r["claim"] not in answered
        answered.add(r["claim"])
        if r["kind"] != "accept":
            continue
        take = ZERO
        if first:
            left = max(ZERO, cap - total)
            asked = None
            if listing["quantity"]:
                asked = _asked(conn, r["id"])
                if asked is None and claim is not None and claim["quantity"]:
                    asked = dec(claim["quantity"])
            take = left if asked is None else min(asked, left)
            total += take
            parties = (owner, claim["claimant"] if claim is not None else r["claimant"])
            if take and conn.execute(
                    f"SELECT 1 FROM responses WHERE claim = ? AND kind = 'fulfil' AND author "
                    f"IN ({','.join('?' * len(parties))})", (r["claim"], *parties)).fetchone():
                fulfilled += take
        conn.execute("UPDATE responses SET committed = ? WHERE id = ?", (text(take), r["id"]))
    conn.execute("UPDATE listings SET committed = ?, fulfilled = ? WHERE id = ?",
                 (text(total), text(fulfilled), target))
    refresh_available(conn, target)


def claim_status(conn: sqlite3.Connection, claim: sqlite3.Row) -> dict[str, Any]:
    """Derived status of one claim from the owner's and the parties' responses."""
    rows = conn.execute(
        "SELECT r.* FROM responses r WHERE r.claim = ? ORDER BY r.ts, r.id",
        (claim["id"],)).fetchall()
    # The owner's first answer to this claim on its listing, in the owner's log order.
    owner_rows = sorted((r for r in rows if r["author"] == claim["owner"]
                         and r["target"] == claim["target"]
                         and r["claimant"] == claim["claimant"]), key=lambda r: r["seq"])
    first = next((r for r in owner_rows if r["kind"] in ("accept", "decline")), None)
    status, committed = "pending", None
    if first is not None and first["kind"] == "decline":
        status = "declined"
    elif first is not None:
        committed = first["committed"]
        status = "accepted"
        if any(r["kind"] == "fulfil" and r["author"] in (claim["owner"], claim["claimant"])
               for r in rows):
            status = "fulfilled"
    return {"status": status, "committed": committed, "responses": rows}


# -- matching -------------------------------------------------------------------------------


def _fits(need: sqlite3.Row, offer: sqlite3.Row) -> tuple[bool, float | None]:
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
        ok, distance = _fits(need, offer)
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
