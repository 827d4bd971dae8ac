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

import h3

from protocol import Entry, decode, decode_header
from protocol.identity import node_id

from . import exchange, matching
from .events import emit

LISTING_KINDS = ("offer", "need")


def _center(area: str | None) -> tuple[float | None, float | None]:
    if not area:
        return None, None
    lat, lng = h3.cell_to_latlng(area)
    return lat, lng


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    lat, lng = _center(fields.get("area"))
    return {
        "title": fields["title"],
        "description": fields.get("description", ""),
        "tags": " ".join(fields.get("tags", [])),
        "category": fields["category"],
        "area": fields.get("area"),
        "lat": lat,
        "lng": lng,
        "available_from": fields.get("available_from"),
        "available_until": fields.get("available_until"),
        "quantity": fields["quantity"]["value"] if "quantity" in fields else None,
        "urgency": fields.get("urgency"),
        "radius_km": fields.get("radius_km"),
        "fields": json.dumps(fields, sort_keys=True, separators=(",", ":")),
    }


_INSERT_LISTING = (
    "INSERT OR IGNORE INTO listings (id, author, kind, seq, local, created, updated, "
    "title, description, tags, category, area, lat, lng, available_from, available_until, "
    "quantity, urgency, radius_km, fields, available) "
    "VALUES (:id, :author, :kind, :seq, :local, :ts, :ts, :title, :description, :tags, "
    ":category, :area, :lat, :lng, :available_from, :available_until, :quantity, :urgency, "
    ":radius_km, :fields, coalesce(CAST(:quantity AS REAL), 1))")


def _listing_row(entry: Entry, content: Any, self_author: bytes) -> dict[str, Any]:
    return {"id": entry.id.hex(), "author": entry.author_id, "kind": entry.header.kind,
            "seq": entry.seq, "local": int(entry.author == self_author),
            "ts": entry.header.timestamp, **_columns(content)}


def apply_many(conn: sqlite3.Connection, entries: list[Entry], self_author: bytes) -> None:
    """Fold verified entries in order; runs of new listings go in one executemany."""
    pending: list[dict[str, Any]] = []
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
        apply(conn, entry, content, self_author)
    if pending:
        _insert_listings(conn, pending)


def _insert_listings(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.executemany(_INSERT_LISTING, rows)
    now = int(time.time() * 1000)
    for row in rows:
        listing_event(conn, row["id"], "created", row)
        matching.rematch(conn, row["id"], now, fresh=True)


def listing_event(conn: sqlite3.Connection, listing_id: str, change: str,
                   row: Any = None) -> None:
    if row is None:
        row = conn.execute("SELECT kind, author FROM listings WHERE id = ?",
                           (listing_id,)).fetchone()
    if row is not None:
        emit(conn, "listing", {"id": listing_id, "kind": row["kind"], "origin": row["author"],
                               "change": change})


def apply(conn: sqlite3.Connection, entry: Entry, content: Any, self_author: bytes) -> None:
    """Fold one newly stored entry (with its decoded, validated payload) into state."""
    kind = entry.header.kind
    author_id = entry.author_id
    ts = entry.header.timestamp
    if content is None:
        return
    self_id = node_id(self_author)
    if kind in LISTING_KINDS:
        _insert_listings(conn, [_listing_row(entry, content, self_author)])
    elif kind == "update":
        row = _own_listing(conn, content["target"], author_id)
        if row is None:
            return
        fields = json.loads(row["fields"])
        fields.update(content["set"])
        if row["kind"] == "offer":
            fields.pop("urgency", None)
            fields.pop("radius_km", None)
        cols = _columns(fields)
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
        erase_payload(conn, content["target"], entry.author)
    elif kind == "claim":
        exchange.fold_claim(conn, entry, content, self_id)
    elif kind in ("accept", "decline", "fulfil"):
        exchange.fold_response(conn, entry, content, self_id)
        listing_event(conn, content["target"].hex(), kind)
    elif kind in ("trust", "untrust"):
        conn.execute(
            "INSERT INTO trust_edges (author, peer, url, active, seq) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (author, peer) DO UPDATE SET url = CASE WHEN excluded.active "
            "THEN excluded.url ELSE trust_edges.url END, active = excluded.active, "
            "seq = excluded.seq WHERE excluded.seq > trust_edges.seq",
            (entry.author, content["peer"], content.get("url", ""), int(kind == "trust"),
             entry.seq))


def _own_listing(conn: sqlite3.Connection, target: bytes, author_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM listings WHERE id = ? AND author = ?",
                        (target.hex(), author_id)).fetchone()


def erase_payload(conn: sqlite3.Connection, target: bytes, author: bytes) -> bool:
    """Drop a payload (the header stays and the log still verifies) and what it showed."""
    cur = conn.execute("UPDATE entries SET payload = NULL WHERE id = ? AND author = ?",
                       (target, author))
    if cur.rowcount:
        listing_event(conn, target.hex(), "erased")
        conn.execute("DELETE FROM listings WHERE id = ?", (target.hex(),))
        conn.execute("DELETE FROM matches WHERE need = ? OR offer = ?",
                     (target.hex(), target.hex()))
    return cur.rowcount > 0


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
