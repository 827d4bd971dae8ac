"""State folded from the log: offers and needs, trust edges, exchanges, matches.

Nothing here is truth. Every row is derived from entries and `rebuild` reproduces it, so
status can never disagree with what the signed logs say. Only an author's own entries
can change its listings (update, withdraw, redact); exchanges are folded in exchange.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from protocol import Entry, decode, decode_header
from protocol.identity import node_id

from . import exchange, matching
from .erasure import TRACE_KINDS, erase_many, erase_payload, erased_listing, scrub_index
from .events import emit_many
from .rows import LISTING_KINDS, columns, listing_event, updated_fields

__all__ = ["LISTING_KINDS", "apply", "apply_many", "eager", "erase_payload", "listing_event",
           "rebuild"]

_INSERT_LISTING = (
    "INSERT OR IGNORE INTO listings (id, author, kind, seq, local, created, updated, "
    "title, description, tags, category, area, lat, lng, available_from, available_until, "
    "quantity, urgency, radius_km, fields, available, hidden) "
    "VALUES (:id, :author, :kind, :seq, :local, :ts, :ts, :title, :description, :tags, "
    ":category, :area, :lat, :lng, :available_from, :available_until, :quantity, :urgency, "
    ":radius_km, :fields, coalesce(CAST(:quantity AS REAL), 1), "
    # hidden by a moderator before the projector reached it
    "EXISTS (SELECT 1 FROM moderation WHERE id = :id AND action = 'hide'))")


def _listing_row(entry: Entry, content: Any, self_author: bytes) -> dict[str, Any]:
    return {"id": entry.id.hex(), "author": entry.author_id, "kind": entry.header.kind,
            "seq": entry.seq, "local": int(entry.author == self_author),
            "ts": entry.header.timestamp, **columns(content)}


def apply_many(conn: sqlite3.Connection, entries: list[Entry], self_author: bytes) -> None:
    """Fold verified entries in order; runs of new listings go in one executemany."""
    pending: list[dict[str, Any]] = []
    scrub = False
    for entry in entries:
        content = entry.content()
        if content is None:
            continue
        if entry.header.kind in LISTING_KINDS:
            pending.append(_listing_row(entry, content, self_author))
            continue
        if pending:
            _insert_listings(conn, pending)
            pending = []
        scrub |= _apply(conn, entry, content, self_author)
    if pending:
        _insert_listings(conn, pending)
    if scrub:
        scrub_index(conn)


def eager(conn: sqlite3.Connection, entries: list[Entry], self_author: bytes) -> None:
    """What replication needs before the projector gets there: trust edges, which decide
    the scope of the very next pull (a new hop). Folding them again later is a no-op."""
    for entry in entries:
        if entry.header.kind in ("trust", "untrust"):
            content = entry.content()
            if content is not None:
                _apply(conn, entry, content, self_author)


def _insert_listings(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    """A run of new listings: one insert, one journal write, then matching, which is
    skipped for a listing no stored counterpart's category could fit (asked once per
    kind and category in the run; the same result as matching it)."""
    conn.executemany(_INSERT_LISTING, rows)
    now = int(time.time() * 1000)
    emit_many(conn, "listing", [{"id": r["id"], "kind": r["kind"], "origin": r["author"],
                                 "change": "created"} for r in rows])
    seen: dict[tuple[str, str], bool] = {}
    for row in rows:
        if matching.may_fit(conn, row["kind"], row["category"], seen):
            matching.rematch(conn, row["id"], now, fresh=True)


def apply(conn: sqlite3.Connection, entry: Entry, content: Any, self_author: bytes) -> None:
    """Fold one newly stored entry (with its decoded, validated payload) into state."""
    if _apply(conn, entry, content, self_author):
        scrub_index(conn)


def _apply(conn: sqlite3.Connection, entry: Entry, content: Any, self_author: bytes) -> bool:
    """Fold one entry; True if it erased listing text (the search index needs a scrub)."""
    kind = entry.header.kind
    author_id = entry.author_id
    ts = entry.header.timestamp
    if content is None:
        return False
    self_id = node_id(self_author)
    if kind in LISTING_KINDS:
        _insert_listings(conn, [_listing_row(entry, content, self_author)])
    elif kind in TRACE_KINDS and erased_listing(conn, content["target"]):
        # About a listing erased here (a late claim, an answer): erased on arrival.
        return erase_many(conn, [(entry.id, entry.author)], scrub=False)[1]
    elif kind == "update":
        row = _own_listing(conn, content["target"], author_id)
        if row is None:
            return False
        fields = updated_fields(row["kind"], json.loads(row["fields"]), content["set"])
        cols = columns(fields)
        sets = ", ".join(f"{k} = :{k}" for k in cols)
        conn.execute(f"UPDATE listings SET {sets}, updated = :ts WHERE id = :id",
                     {**cols, "ts": max(ts, row["updated"]), "id": row["id"]})
        # A new quantity changes what every accept of it commits: recompute them all.
        exchange.reallocate(conn, row["id"])
        listing_event(conn, row["id"], "updated")
        matching.rematch(conn, row["id"], int(time.time() * 1000))
    elif kind == "withdraw":
        row = _own_listing(conn, content["target"], author_id)
        if row is not None:
            conn.execute("UPDATE listings SET withdrawn = 1, updated = ? WHERE id = ?",
                         (max(ts, row["updated"]), row["id"]))
            listing_event(conn, row["id"], "withdrawn")
            matching.rematch(conn, row["id"], 0)
    elif kind == "redact":
        # Only the author's own entries: erase_many matches the target's author.
        return erase_many(conn, [(content["target"], entry.author)], scrub=False)[1]
    elif kind == "claim":
        exchange.fold_claim(conn, entry, content, self_id)
    elif kind in ("accept", "decline", "fulfil"):
        if exchange.fold_response(conn, entry, content, self_id):
            listing_event(conn, content["target"].hex(), kind)
    elif kind in ("trust", "untrust"):
        conn.execute(
            "INSERT INTO trust_edges (author, peer, url, active, seq) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (author, peer) DO UPDATE SET url = CASE WHEN excluded.active "
            "THEN excluded.url ELSE trust_edges.url END, active = excluded.active, "
            "seq = excluded.seq WHERE excluded.seq > trust_edges.seq",
            (entry.author, content["peer"], content.get("url", ""), int(kind == "trust"),
             entry.seq))
    return False


def _own_listing(conn: sqlite3.Connection, target: bytes, author_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM listings WHERE id = ? AND author = ?",
                        (target.hex(), author_id)).fetchone()


def rebuild(conn: sqlite3.Connection, self_author: bytes) -> int:
    """Recompute every projection from the stored entries, in each log's order."""
    last_event = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    for table in ("listings", "trust_edges", "claims", "responses", "matches"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute("DELETE FROM heads")
    conn.execute("INSERT INTO heads (author, seq, id) SELECT author, seq, id FROM entries e "
                 "WHERE seq = (SELECT max(seq) FROM entries WHERE author = e.author)")
    count = 0
    for row in conn.execute("SELECT raw, payload FROM entries ORDER BY rowid").fetchall():
        entry = decode_header(row["raw"])
        content = decode(row["payload"]) if row["payload"] is not None else None
        apply(conn, entry, content, self_author)
        count += 1
    # Local moderation is not in any log: re-apply it; and a rebuild announces nothing.
    conn.execute("UPDATE listings SET hidden = 1 WHERE id IN "
                 "(SELECT id FROM moderation WHERE action = 'hide')")
    conn.execute("DELETE FROM events WHERE id > ?", (last_event,))
    return count
