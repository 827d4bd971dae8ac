"""Erasing a payload and everything that shows it (spec §9.3): the header stays.

An author's `redact`, a moderator's local erase and the retention sweep all come here,
so none of them leaves text behind: erasing an offer or a need also erases its author's
updates and withdraws of it, the claims on it and the answers to them, and clears the
rows that quoted them (the listing, its search index, matches, claims, responses).
Erasing an update or a withdraw refolds its listing from what is left; erasing a claim
or an answer drops its row. Event rows carry ids only, never text.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from protocol import decode
from protocol.identity import node_id

from ..store.ledger import mark_erased
from . import exchange, matching
from .rows import LISTING_KINDS, columns, listing_event, updated_fields

CHANGE_KINDS = ("update", "withdraw")
ANSWER_KINDS = ("accept", "decline", "fulfil")
# Kinds whose payload names a listing as `target`: erased with it.
TRACE_KINDS = (*CHANGE_KINDS, "claim", *ANSWER_KINDS)


@dataclass(frozen=True)
class Stored:
    id: bytes
    author: bytes
    kind: str
    content: Any  # None once erased


def _stored(conn: sqlite3.Connection, entry_id: bytes) -> Stored | None:
    row = conn.execute("SELECT id, author, kind, payload FROM entries WHERE id = ?",
                       (entry_id,)).fetchone()
    if row is None:
        return None
    content = decode(row["payload"]) if row["payload"] is not None else None
    return Stored(row["id"], row["author"], row["kind"], content)


def erased_listing(conn: sqlite3.Connection, target: bytes) -> bool:
    """Whether ``target`` is an offer or need whose payload is gone for good here (not
    merely missing, waiting to be fetched again)."""
    row = conn.execute(
        "SELECT kind, payload IS NULL AND NOT EXISTS (SELECT 1 FROM payload_missing m "
        "WHERE m.id = e.id) AS gone FROM entries e WHERE e.id = ?", (target,)).fetchone()
    return row is not None and row["kind"] in LISTING_KINDS and bool(row["gone"])


def changes(conn: sqlite3.Connection, author: bytes, targets: set[bytes]
            ) -> list[tuple[sqlite3.Row, dict[str, Any]]]:
    """The author's updates and withdraws of ``targets`` still holding a payload, in log
    order: (entry row, content)."""
    out = []
    for row in conn.execute(
            "SELECT id, seq, kind, ts, payload FROM entries WHERE author = ? AND kind IN "
            "('update', 'withdraw') AND payload IS NOT NULL ORDER BY seq", (author,)):
        content = decode(row["payload"])
        if isinstance(content, dict) and content.get("target") in targets:
            out.append((row, content))
    return out


def traces(conn: sqlite3.Connection, listings: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """Entries that show something of these listings (id, author): the author's updates
    and withdraws of them, the claims on them and the answers to those claims."""
    by_author: dict[bytes, set[bytes]] = {}
    for target, author in listings:
        by_author.setdefault(author, set()).add(target)
    out: list[bytes] = []
    for author, targets in by_author.items():
        out += [row["id"] for row, _ in changes(conn, author, targets)]
        hexes = [t.hex() for t in targets]
        for start in range(0, len(hexes), 500):
            chunk = hexes[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out += [bytes.fromhex(r[0]) for r in conn.execute(
                f"SELECT id FROM claims WHERE target IN ({marks}) UNION "
                f"SELECT id FROM responses WHERE target IN ({marks})", chunk + chunk)]
    return out


def erase_payload(conn: sqlite3.Connection, target: bytes, author: bytes) -> bool:
    """Erase one entry of ``author`` and what it left behind; False if there is none."""
    return erase_many(conn, [(target, author)])[0] > 0


def erase_many(conn: sqlite3.Connection, targets: list[tuple[bytes, bytes]], *,
               scrub: bool = True) -> tuple[int, bool]:
    """Erase entries (id, author) and their traces: (how many were found, whether listing
    text left the listings table).

    Runs even when a payload is already gone (a redact that arrives after its target was
    pulled payload-less), so late traces still go. ``scrub=False``: the caller scrubs
    the search index once after a batch (`scrub_index`); otherwise it is done here.
    """
    found = [s for t, a in targets if (s := _stored(conn, t)) is not None and s.author == a]
    listings = [(s.id, s.author) for s in found if s.kind in LISTING_KINDS]
    seen = {s.id for s in found}
    more = [s for i in traces(conn, listings) if i not in seen
            and (s := _stored(conn, i)) is not None]
    dirty = False
    for stored in found + more:  # listings first: their traces then have no row to refold
        dirty |= _erase(conn, stored)
    if dirty and scrub:
        scrub_index(conn)
    return len(found), dirty


def _erase(conn: sqlite3.Connection, s: Stored) -> bool:
    """Drop one payload and its rows; True if listing text left the listings table."""
    if s.content is not None:
        conn.execute("UPDATE entries SET payload = NULL WHERE id = ?", (s.id,))
    mark_erased(conn, s.id)  # never fetched again, never taken from a peer
    key = s.id.hex()
    if s.kind in LISTING_KINDS:
        row = conn.execute("SELECT kind, author FROM listings WHERE id = ?", (key,)).fetchone()
        if row is None:
            return False
        listing_event(conn, key, "erased", row)
        conn.execute("DELETE FROM listings WHERE id = ?", (key,))
        matching.rematch(conn, key, 0)  # drops its matches and refills its counterparts
        return True
    if s.kind == "claim" or s.kind in ANSWER_KINDS:
        table = "claims" if s.kind == "claim" else "responses"
        row = conn.execute(f"DELETE FROM {table} WHERE id = ? RETURNING target",
                           (key,)).fetchone()
        if row is not None:
            exchange.reallocate(conn, row["target"])
        return False
    if s.kind in CHANGE_KINDS and isinstance(s.content, dict):
        return refold(conn, s.content["target"], s.author)
    if s.kind in ("trust", "untrust") and isinstance(s.content, dict):
        _refold_trust(conn, s.author, s.content["peer"])
    return False


def refold(conn: sqlite3.Connection, target: bytes, author: bytes) -> bool:
    """Recompute a listing from its payload and its author's remaining changes."""
    row = conn.execute("SELECT * FROM listings WHERE id = ? AND author = ?",
                       (target.hex(), node_id(author))).fetchone()
    base = _stored(conn, target)
    if row is None or base is None or not isinstance(base.content, dict):
        return False
    fields, withdrawn, updated = dict(base.content), 0, row["created"]
    for change, content in changes(conn, author, {target}):
        if change["kind"] == "update":
            fields = updated_fields(row["kind"], fields, content["set"])
        else:
            withdrawn = 1
        updated = max(updated, change["ts"])
    cols = columns(fields)
    sets = ", ".join(f"{k} = :{k}" for k in cols)
    conn.execute(f"UPDATE listings SET {sets}, withdrawn = :withdrawn, updated = :updated "
                 "WHERE id = :id", {**cols, "withdrawn": withdrawn, "updated": updated,
                                    "id": row["id"]})
    exchange.reallocate(conn, row["id"])
    listing_event(conn, row["id"], "updated")
    matching.rematch(conn, row["id"], 0 if withdrawn else int(time.time() * 1000))
    return True


def _refold_trust(conn: sqlite3.Connection, author: bytes, peer: bytes) -> None:
    """A trust edge from the author's remaining trust / untrust entries for ``peer``."""
    edge: tuple[str, int, int] | None = None
    url = ""
    for row in conn.execute("SELECT seq, kind, payload FROM entries WHERE author = ? AND "
                            "kind IN ('trust', 'untrust') AND payload IS NOT NULL "
                            "ORDER BY seq", (author,)):
        content = decode(row["payload"])
        if isinstance(content, dict) and content.get("peer") == peer:
            url = content.get("url", url) if row["kind"] == "trust" else url
            edge = (url, int(row["kind"] == "trust"), row["seq"])
    if edge is None:
        conn.execute("DELETE FROM trust_edges WHERE author = ? AND peer = ?", (author, peer))
    else:
        conn.execute("INSERT INTO trust_edges (author, peer, url, active, seq) VALUES "
                     "(?, ?, ?, ?, ?) ON CONFLICT (author, peer) DO UPDATE SET url = "
                     "excluded.url, active = excluded.active, seq = excluded.seq",
                     (author, peer, *edge))


def scrub_index(conn: sqlite3.Connection) -> None:
    """Merge the full-text index into one segment: a deleted row's words otherwise stay
    in older segments (behind a delete marker) until a merge happens to reach them."""
    conn.execute("INSERT INTO listings_fts (listings_fts) VALUES ('optimize')")
