"""Exchanges between groups and matching, folded from the logs (spec §9.6).

Only a listing's owner commits its quantity, and accepts are folded in the owner's log
order, each taking at most what is still available: every node computes the same
allocation, and concurrent claims can never over-commit. Responses may arrive before
the claim they answer (they come from other logs); the fold is written so the final
state does not depend on arrival order.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from protocol import Entry
from protocol.identity import node_id
from protocol.taxonomy import category_matches

from .db import _dist_km
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
    if self_id in (owner, entry.author_id):
        emit(conn, "claim", {"id": claim_id, "change": "created", "target":
                             content["target"].hex(), "claimant": entry.author_id,
                             "owner": owner})


def fold_response(conn: sqlite3.Connection, entry: Entry, content: dict[str, Any],
                  self_id: str) -> None:
    """accept / decline / fulfil: record it, then apply what it means now."""
    kind = entry.header.kind
    target = content["target"].hex()
    claim_id = content["claim"].hex()
    claimant = node_id(content["claim_author"])
    listing = conn.execute("SELECT * FROM listings WHERE id = ?", (target,)).fetchone()
    author = entry.author_id
    if kind in ("accept", "decline"):
        if listing is None or listing["author"] != author:
            return  # only the owner answers a claim (a listing we cannot see: ignore)
    elif listing is not None and author not in (claimant, listing["author"]):
        return  # only the two parties record a hand-over
    committed = None
    if kind == "accept":
        answered = conn.execute(
            "SELECT 1 FROM responses WHERE claim = ? AND kind IN ('accept', 'decline') "
            "AND author = ?", (claim_id, author)).fetchone()
        if answered is None:
            left = max(ZERO, capacity(listing) - dec(listing["committed"]))
            asked = dec(content["quantity"]["value"]) if "quantity" in content else left
            take = min(asked, left)
            committed = text(take)
            conn.execute("UPDATE listings SET committed = ?, updated = max(updated, ?) "
                         "WHERE id = ?", (text(dec(listing["committed"]) + take),
                                          entry.header.timestamp, target))
            refresh_available(conn, target)
        else:
            committed = "0"
    first_fulfil = kind == "fulfil" and conn.execute(
        "SELECT 1 FROM responses WHERE claim = ? AND kind = 'fulfil'", (claim_id,)
    ).fetchone() is None
    conn.execute(
        "INSERT OR IGNORE INTO responses (id, kind, author, target, claim, claimant, committed, "
        "sealed, seq, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.id.hex(), kind, author, target, claim_id, claimant, committed,
         content.get("sealed"), entry.seq, entry.header.timestamp))
    # A hand-over counts once per claim, whichever of fulfil and accept arrives last.
    if kind == "fulfil" and first_fulfil:
        _count_fulfilled(conn, target, claim_id)
    elif kind == "accept" and committed not in (None, "0") and conn.execute(
            "SELECT 1 FROM responses WHERE claim = ? AND kind = 'fulfil'",
            (claim_id,)).fetchone():
        _count_fulfilled(conn, target, claim_id)
    owner = listing["author"] if listing is not None else None
    if self_id in (claimant, owner, author):
        emit(conn, "claim", {"id": claim_id, "change": kind, "target": target,
                             "claimant": claimant, "by": author, "committed": committed})


def _count_fulfilled(conn: sqlite3.Connection, target: str, claim_id: str) -> None:
    accept = conn.execute(
        "SELECT r.committed FROM responses r JOIN listings l ON l.id = r.target "
        "WHERE r.claim = ? AND r.kind = 'accept' AND r.author = l.author "
        "AND r.committed IS NOT NULL ORDER BY r.seq LIMIT 1", (claim_id,)).fetchone()
    if accept is None or dec(accept["committed"]) == ZERO:
        return
    conn.execute("UPDATE listings SET fulfilled = ? WHERE id = ?",
                 (text(dec(conn.execute("SELECT fulfilled FROM listings WHERE id = ?",
                                        (target,)).fetchone()["fulfilled"])
                       + dec(accept["committed"])), target))


def claim_status(conn: sqlite3.Connection, claim: sqlite3.Row) -> dict[str, Any]:
    """Derived status of one claim from the owner's and the parties' responses."""
    rows = conn.execute(
        "SELECT r.* FROM responses r WHERE r.claim = ? ORDER BY r.ts, r.id",
        (claim["id"],)).fetchall()
    owner_rows = [r for r in rows if r["author"] == claim["owner"]]
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
        distance = _dist_km(need["lat"], need["lng"], offer["lat"], offer["lng"])
        radius = need["radius_km"] if need["radius_km"] is not None else DEFAULT_RADIUS_KM
        if distance > radius:
            return False, None
    return True, distance


def _prefixes(category: str) -> list[str]:
    parts = category.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def rematch(conn: sqlite3.Connection, listing_id: str, now: int) -> None:
    """Recompute the matches of one listing against its counterparts (incremental).

    Candidates come from the category index: a need for `food` meets `food/...` offers;
    an offer of `food/bread` meets needs for `food` or `food/bread`.
    """
    row = conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()
    old = {(r[0], r[1]) for r in conn.execute(
        "SELECT need, offer FROM matches WHERE need = ? OR offer = ?", (listing_id, listing_id))}
    if row is None or row["withdrawn"]:
        conn.execute("DELETE FROM matches WHERE need = ? OR offer = ?", (listing_id, listing_id))
        return
    if row["kind"] == "need":
        candidates = conn.execute(
            "SELECT * FROM listings WHERE kind = 'offer' AND withdrawn = 0 AND (category = ? "
            "OR substr(category, 1, ?) = ?)",
            (row["category"], len(row["category"]) + 1, row["category"] + "/"))
        pairs = [(row, c) for c in candidates]
    else:
        prefixes = _prefixes(row["category"])
        marks = ",".join("?" * len(prefixes))
        candidates = conn.execute(
            f"SELECT * FROM listings WHERE kind = 'need' AND withdrawn = 0 AND category IN "
            f"({marks})", prefixes)
        pairs = [(c, row) for c in candidates]
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
