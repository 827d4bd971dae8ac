"""The projector's cursor: which stored entries are folded into state, and which wait.

Log first, fold after (BRIEF, wave 2): ingest stores verified entries (the truth) and
leaves folding them into listings, matches and events to a projector that runs behind.
The cursor is the last `entries.rowid` folded; rowids grow in store order, which keeps
each log's order. It moves in the same transaction as the fold it records, so a crash
at any moment neither loses nor repeats a fold. This node's own entries are folded as
they are written (read-your-writes) and are passed over here.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from protocol import Entry, decode_header


def cursor(conn: sqlite3.Connection) -> int:
    """The rowid of the last entry folded (every entry up to it is projected)."""
    row = conn.execute("SELECT cursor FROM projector WHERE id = 0").fetchone()
    return row[0] if row else 0


def move(conn: sqlite3.Connection, rowid: int) -> None:
    """Record that every entry up to ``rowid`` is folded (call in the fold's transaction)."""
    conn.execute("INSERT INTO projector (id, cursor, at) VALUES (0, ?, ?) ON CONFLICT (id) "
                 "DO UPDATE SET cursor = excluded.cursor, at = excluded.at",
                 (rowid, int(time.time() * 1000)))


def pending(conn: sqlite3.Connection, after: int, limit: int) -> list[sqlite3.Row]:
    """Stored entries past the cursor, in store order: rowid, author, id, raw, payload."""
    return conn.execute("SELECT rowid, author, id, raw, payload FROM entries WHERE rowid > ? "
                        "ORDER BY rowid LIMIT ?", (after, limit)).fetchall()


def caught_up(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM entries WHERE rowid > "
                        "(SELECT cursor FROM projector WHERE id = 0))").fetchone()[0] == 1


@dataclass(frozen=True)
class Lag:
    """How far the projector is behind the log: stored entries not yet searchable, and
    how long the oldest of them has waited."""

    entries: int
    seconds: float

    def as_json(self) -> dict[str, float]:
        return {"lag_entries": self.entries, "lag_seconds": round(self.seconds, 3)}


def lag(conn: sqlite3.Connection) -> Lag:
    at = cursor(conn)
    row = conn.execute("SELECT count(*), min(received) FROM entries WHERE rowid > ?",
                       (at,)).fetchone()
    if not row[0]:
        return Lag(0, 0.0)
    return Lag(row[0], max(0.0, time.time() - row[1] / 1000))


def refold(conn: sqlite3.Connection, filled: list[tuple[int, Entry]], folded: int,
            me: bytes) -> list[Entry]:
    """The filled entries and every later stored entry whose payload names one of them or
    one of their targets, in store order: folding them again gives the state a fold in
    log order would have (update, withdraw, claims and answers are idempotent). Only
    entries folded already: at or below the cursor ``folded``, or our own."""
    refs = set()
    for _, e in filled:
        refs.add(e.id)
        refs.update(_ids_in(e.payload or b""))
    first = filled[0][0]
    ids = {e.id for _, e in filled}
    out = [e for r, e in filled if r <= folded]
    order = {e.id: r for r, e in filled}
    for row in conn.execute("SELECT rowid, author, raw, payload FROM entries WHERE rowid > ? "
                            "AND payload IS NOT NULL ORDER BY rowid", (first,)):
        if row["rowid"] > folded and row["author"] != me:
            continue  # the projector has not reached it: it folds it with the payload
        if refs.isdisjoint(_ids_in(row["payload"])):
            continue
        e = decode_header(row["raw"])
        if e.id not in ids:
            out.append(Entry(e.header, e.raw, e.id, row["payload"]))
            order[e.id] = row["rowid"]
    return sorted(out, key=lambda e: order[e.id])


def _ids_in(payload: bytes) -> set[bytes]:
    """Every 32-byte bin value in a canonical payload (bin8 of 32 bytes: c4 20 ...)."""
    out = set()
    at = payload.find(b"\xc4\x20")
    while at >= 0:
        out.add(payload[at + 2:at + 34])
        at = payload.find(b"\xc4\x20", at + 1)
    return out
