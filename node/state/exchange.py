"""Exchanges between groups, folded from the logs (spec §9.6); matching is in matching.py.

Only a listing's owner commits its quantity, and everything that commits it is folded in
the owner's log order, each taking at most what is still available: every node computes
the same allocation, and concurrent claims can never over-commit. What commits a
listing: the owner's accepts of claims on it, and the owner's own claims that name it
(`for_need` / `from_offer`: a claim on B's offer that fills our need draws on that need
once B accepts). Responses may arrive before the claim they answer (they come from other
logs); the fold is written so the final state does not depend on arrival order.

Quantities are converted to the listing's unit (protocol/units.py); a quantity that does
not convert counts as absent. A draw counts what the other owner's accept *names*, not
what its walk commits, so no listing's walk depends on another's (no cycles).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

from protocol import Entry, decode, units
from protocol.identity import node_id

from .events import emit
from .rows import listing_event

ZERO = Decimal(0)
ANSWERS = ("accept", "decline", "fulfil")
# A claim's draw on one of its author's listings, stored as a `responses` row whose id
# is the claim's: the field that names the listing -> the kind that listing must be.
LINKS = {"for_need": "need", "from_offer": "offer"}
_LINK_SQL = "('for_need', 'from_offer')"
_ANSWER_SQL = "('accept', 'decline', 'fulfil')"


def dec(text: str | None) -> Decimal:
    return Decimal(text) if text else ZERO


def text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def capacity(row: sqlite3.Row) -> Decimal:
    """A listing without a quantity counts as one unit, committed whole by one accept."""
    return dec(row["quantity"]) if row["quantity"] else Decimal(1)


def unit(row: sqlite3.Row) -> str | None:
    """A listing row's unit (None without a quantity)."""
    fields = json.loads(row["fields"])
    return fields["quantity"]["unit"] if "quantity" in fields else None


def refresh_available(conn: sqlite3.Connection, listing_id: str) -> None:
    row = conn.execute("SELECT quantity, committed FROM listings WHERE id = ?",
                       (listing_id,)).fetchone()
    if row is not None:
        left = max(ZERO, capacity(row) - dec(row["committed"]))
        conn.execute("UPDATE listings SET available = ? WHERE id = ?", (float(left), listing_id))


def link_of(content: dict[str, Any]) -> str | None:
    """Which of the claimant's listings a claim payload names, if any ('for_need'...)."""
    return next((k for k in LINKS if k in content), None)


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
    link = link_of(content)
    if link is not None:
        # Walked with the claimant's other answers on that listing, in its log order.
        conn.execute(
            "INSERT OR IGNORE INTO responses (id, kind, author, target, claim, claimant, "
            "committed, sealed, seq, ts) VALUES (?, ?, ?, ?, ?, ?, '0', NULL, ?, ?)",
            (claim_id, link, entry.author_id, content[link].hex(), claim_id,
             entry.author_id, entry.seq, entry.header.timestamp))
    # Answers may have arrived first (they come from another log): the claim can change
    # what they commit (its quantity, whether it is a claim on that listing at all).
    for row in conn.execute(f"SELECT DISTINCT target FROM responses WHERE claim = ? AND "
                            f"kind NOT IN {_LINK_SQL}", (claim_id,)).fetchall():
        reallocate(conn, row["target"])
    if link is not None:
        _walk(conn, content[link].hex())
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


def quantity_of(conn: sqlite3.Connection, entry_id: str) -> tuple[Decimal, str] | None:
    """The quantity an entry's payload names (None if it names none or is erased)."""
    row = conn.execute("SELECT payload FROM entries WHERE id = ?",
                       (bytes.fromhex(entry_id),)).fetchone()
    if row is None or row["payload"] is None:
        return None
    content = decode(row["payload"])
    quantity = content.get("quantity") if isinstance(content, dict) else None
    return (dec(quantity["value"]), quantity["unit"]) if quantity else None


def in_unit(quantity: tuple[Decimal, str] | None, to: str | None) -> Decimal | None:
    """A named quantity in a listing's unit; None if absent or it does not convert."""
    if quantity is None or to is None:
        return None
    return units.convert(quantity[0], quantity[1], to)


def decision(conn: sqlite3.Connection, claim: sqlite3.Row) -> sqlite3.Row | None:
    """The owner's first accept or decline of a claim on its listing, in its log order."""
    return conn.execute(
        "SELECT * FROM responses WHERE claim = ? AND author = ? AND target = ? AND "
        "claimant = ? AND kind IN ('accept', 'decline') ORDER BY seq LIMIT 1",
        (claim["id"], claim["owner"], claim["target"], claim["claimant"])).fetchone()


def _fulfilled(conn: sqlite3.Connection, claim_id: str, parties: tuple[str, str]) -> bool:
    return conn.execute("SELECT 1 FROM responses WHERE claim = ? AND kind = 'fulfil' AND "
                        "author IN (?, ?)", (claim_id, *parties)).fetchone() is not None


def reallocate(conn: sqlite3.Connection, target: str) -> None:
    """Recompute a listing's commitments (`_walk`), and those of the listings its claims'
    claimants named (their draws follow this listing's answers)."""
    _walk(conn, target)
    for row in conn.execute(
            f"SELECT DISTINCT d.target FROM responses d WHERE d.kind IN {_LINK_SQL} AND "
            "d.target != :t AND d.id IN (SELECT id FROM claims WHERE target = :t UNION "
            f"SELECT claim FROM responses WHERE target = :t AND kind IN {_ANSWER_SQL})",
            {"t": target}).fetchall():
        if _walk(conn, row["target"]):
            listing_event(conn, row["target"], "drawn")  # a claim that names it moved


def _walk(conn: sqlite3.Connection, target: str) -> bool:
    """Recompute one listing's commitments from everything that commits it (§9.6).

    The owner's accepts and draws are walked in its log order, each taking min(asked,
    still available); the result depends only on which entries are stored, never on the
    order they arrived in (a claim after its accept, a fulfil before the accept, an
    update of the quantity). A claim not seen yet counts as valid until it arrives.
    True if what it commits or fulfils changed.
    """
    listing = conn.execute("SELECT * FROM listings WHERE id = ?", (target,)).fetchone()
    if listing is None:
        return False
    owner, mine = listing["author"], unit(listing)
    cap = capacity(listing)
    total = fulfilled = ZERO
    answered: set[str] = set()
    rows = conn.execute(
        "SELECT id, kind, claim, claimant FROM responses WHERE target = ? AND author = ? "
        "AND kind IN ('accept', 'decline', 'for_need', 'from_offer') ORDER BY seq",
        (target, owner)).fetchall()
    for r in rows:
        claim = conn.execute("SELECT * FROM claims WHERE id = ?", (r["claim"],)).fetchone()
        if r["kind"] in LINKS:
            if claim is None:  # the claim was erased: its draw goes with it
                conn.execute("DELETE FROM responses WHERE id = ?", (r["id"],))
                continue
            take = _draw(conn, r, claim, listing, mine, cap - total)
            total += take
            if take and _fulfilled(conn, claim["id"], (claim["owner"], claim["claimant"])):
                fulfilled += take
            conn.execute("UPDATE responses SET committed = ? WHERE id = ?", (text(take), r["id"]))
            continue
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
                asked = in_unit(quantity_of(conn, r["id"]), mine)
                if asked is None and claim is not None:
                    asked = in_unit(quantity_of(conn, claim["id"]), mine)
            take = left if asked is None else min(asked, left)
            total += take
            parties = (owner, claim["claimant"] if claim is not None else r["claimant"])
            if take and _fulfilled(conn, r["claim"], parties):
                fulfilled += take
        conn.execute("UPDATE responses SET committed = ? WHERE id = ?", (text(take), r["id"]))
    conn.execute("UPDATE listings SET committed = ?, fulfilled = ? WHERE id = ?",
                 (text(total), text(fulfilled), target))
    refresh_available(conn, target)
    return (listing["committed"], listing["fulfilled"]) != (text(total), text(fulfilled))


def _draw(conn: sqlite3.Connection, r: sqlite3.Row, claim: sqlite3.Row, listing: sqlite3.Row,
          mine: str | None, left: Decimal) -> Decimal:
    """What the claimant's own claim takes from the listing it names: nothing unless the
    listing is of the kind the field names and the claim's owner accepted it; then what
    the accept names, else what the claim asked, else all that is left."""
    if LINKS[r["kind"]] != listing["kind"]:
        return ZERO
    other = conn.execute("SELECT kind FROM listings WHERE id = ?", (claim["target"],)
                         ).fetchone()
    if other is None or other["kind"] == listing["kind"]:
        return ZERO  # a need fills from an offer, an offer answers a need
    first = decision(conn, claim)
    if first is None or first["kind"] != "accept":
        return ZERO
    left = max(ZERO, left)
    asked = None
    if listing["quantity"]:
        asked = in_unit(quantity_of(conn, first["id"]), mine)
        if asked is None:
            asked = in_unit(quantity_of(conn, claim["id"]), mine)
    return left if asked is None else min(asked, left)


def claim_status(conn: sqlite3.Connection, claim: sqlite3.Row) -> dict[str, Any]:
    """Derived status of one claim from the owner's and the parties' responses, and what
    it draws on the claimant's own listing it names (``draw``: that row or None)."""
    rows = conn.execute(
        f"SELECT r.* FROM responses r WHERE r.claim = ? AND r.kind IN {_ANSWER_SQL} "
        "ORDER BY r.ts, r.id", (claim["id"],)).fetchall()
    draw = conn.execute(f"SELECT * FROM responses WHERE id = ? AND kind IN {_LINK_SQL}",
                        (claim["id"],)).fetchone()
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
    return {"status": status, "committed": committed, "responses": rows, "draw": draw}

