"""Reads of the stored logs (any connection): heads, rows of one log, re-verification."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from protocol import Entry, ProtocolError, decode_header, verify_run
from protocol.sync import Head


def head_entry(conn: sqlite3.Connection, author: bytes) -> Entry | None:
    row = conn.execute("SELECT e.raw FROM heads h JOIN entries e ON e.id = h.id "
                       "WHERE h.author = ?", (author,)).fetchone()
    return decode_header(row["raw"]) if row else None


def heads(conn: sqlite3.Connection) -> dict[bytes, Head]:
    return {r["author"]: Head(r["seq"], r["id"])
            for r in conn.execute("SELECT author, seq, id FROM heads")}


def entry_rows(conn: sqlite3.Connection, author: bytes, after: int, limit: int,
               max_bytes: int | None = None) -> list[sqlite3.Row]:
    """Stored rows of one log after ``after``, up to ``limit`` rows or about max_bytes."""
    rows = []
    size = 0
    for row in conn.execute("SELECT seq, id, raw, payload FROM entries WHERE author = ? "
                            "AND seq > ? ORDER BY seq LIMIT ?", (author, after, limit)):
        size += len(row["raw"]) + len(row["payload"] or b"")
        if max_bytes is not None and rows and size > max_bytes:
            break
        rows.append(row)
    return rows


def iter_log(conn: sqlite3.Connection, author: bytes, batch: int = 1000
             ) -> Iterator[list[sqlite3.Row]]:
    after = 0
    while True:
        rows = entry_rows(conn, author, after, batch)
        if not rows:
            return
        yield rows
        after = rows[-1]["seq"]


def verify_log(conn: sqlite3.Connection, author: bytes) -> tuple[int, str | None]:
    """Re-verify one stored log from seq 1: (entries checked, first problem or None)."""
    checked = 0
    previous: Entry | None = None
    for rows in iter_log(conn, author):
        try:
            run = verify_run([(r["raw"], r["payload"]) for r in rows], previous=previous)
        except ProtocolError as exc:
            return checked, f"{exc.code}: {exc.detail} (log {author.hex()}, after seq {checked})"
        for r, e in zip(rows, run, strict=True):
            if r["id"] != e.id or r["seq"] != e.seq:
                return checked, f"row seq {r['seq']} is stored under the wrong id or seq"
        checked += len(run)
        previous = run[-1]
    return checked, None
