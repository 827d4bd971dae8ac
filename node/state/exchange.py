"""Exchanges between groups, folded from the logs (spec §9.6); matching is in matching.py.

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

from protocol import Entry, decode
from protocol.identity import node_id

from .events import emit

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
                  self_id: str) -> bool:
    """accept / decline / fulfil: record it, then recompute what its listing commits.
    False when the fold ignores it (not from a party that may answer)."""
    kind = entry.header.kind
    target = content["target"].hex()
    claim_id = content["claim"].hex()
    claimant = node_id(content["claim_author"])
    listing = conn.execute("SELECT author FROM listings WHERE id = ?", (target,)).fetchone()
    author = entry.author_id
    if kind in ("accept", "decline"):
        if listing is None or listing["author"] != author:
            return False  # only the owner answers a claim (a listing we cannot see: ignore)
    elif listing is not None and author not in (claimant, listing["author"]):
        return False  # only the two parties record a hand-over
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
    return True


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
