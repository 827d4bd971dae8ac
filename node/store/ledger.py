"""The ledger: appends and ingests signed entries in one SQLite file.

Synchronous, so the CLI and the async writer (writer.py) share it. What is folded from
the entries (listings, claims, matches) is not the store's business: the state layer
hands its fold in as `Fold`, so the store never imports the layers above it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from protocol import (
    Entry,
    Identity,
    ProtocolError,
    check_payload,
    create_entry,
    decode_header,
    make_fork_proof,
    verify_run,
)
from protocol.identity import node_id, sha256
from protocol.sync import Head

from .db import connect, migrate, redact_target, redactions

T = TypeVar("T")


class StoreError(Exception):
    """A write the store refuses; ``code`` maps to a problem type."""

    def __init__(self, detail: str, code: str = "conflict") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int
    fork: bytes | None = None  # encoded fork proof, if this batch revealed one
    missing: int = 0  # entries stored without a payload that no redact explains


class Fold(Protocol):
    """What the state layer folds from entries as they are stored (node.state.projection)."""

    def apply(self, conn: sqlite3.Connection, entry: Entry, content: Any,
              self_author: bytes) -> None: ...

    def apply_many(self, conn: sqlite3.Connection, entries: list[Entry],
                   self_author: bytes) -> None: ...

    def rebuild(self, conn: sqlite3.Connection, self_author: bytes) -> int: ...


class Ledger:
    """Synchronous operations on the store; every write runs inside `transaction`."""

    def __init__(self, path: Path, identity: Identity, fold: Fold) -> None:
        self.path = Path(path)
        self.identity = identity
        self.fold = fold
        self.conn = connect(self.path)
        migrate(self.conn)
        self._erased = self.conn.execute(
            "SELECT coalesce(max(rowid), 0) FROM erased").fetchone()[0]
        # Set by any write that stores entries or fork proofs; the async Store turns it
        # into a version bump and change notifications after the commit.
        self.changed = False

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.commit()
        return result

    def commit(self) -> None:
        """COMMIT; after an erasure also push old page images out of the WAL, where the
        erased text would otherwise stay readable until the next checkpoint."""
        self.conn.execute("COMMIT")
        erased = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM erased").fetchone()[0]
        if erased != self._erased:
            self._erased = erased
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- writes (call inside a transaction) --------------------------------------------

    def append_local(self, conn: sqlite3.Connection, kind: str, content: Any,
                     timestamp: int | None = None) -> Entry:
        """Sign and store the next entry of this node's own log."""
        me = self.identity.public
        if conn.execute("SELECT 1 FROM forks WHERE author = ?", (me,)).fetchone():
            raise StoreError("this node's own log is forked (was the key file copied to "
                             "another machine?); it cannot append until an operator "
                             "resolves it", code="log-frozen")
        previous = head_entry(conn, me)
        entry = create_entry(self.identity, kind, content, previous=previous,
                             timestamp=timestamp)
        _insert(conn, [entry])
        self.fold.apply(conn, entry, content, me)
        self.changed = True
        return entry

    def ingest(self, conn: sqlite3.Connection, author: bytes, entries: list[Entry]) -> IngestResult:
        """Store verified entries of one author's log, continuing its current head.

        Entries at or below the head are duplicates when the ids agree and a fork when they
        differ: the proof is stored and the log frozen at the fork point.
        """
        if conn.execute("SELECT 1 FROM forks WHERE author = ?", (author,)).fetchone():
            return IngestResult(0, 0)
        if conn.execute("SELECT 1 FROM blocks WHERE author = ?", (node_id(author),)).fetchone():
            return IngestResult(0, 0)  # blocked here: not stored, so not relayed either
        dups = 0
        fork: bytes | None = None
        fresh: list[Entry] = []
        head = conn.execute("SELECT seq, id FROM heads WHERE author = ?", (author,)).fetchone()
        seq, hid = (head["seq"], head["id"]) if head else (0, None)
        for entry in entries:
            h = entry.header
            if h.seq <= seq:
                row = conn.execute("SELECT id, raw FROM entries WHERE author = ? AND seq = ?",
                                   (author, h.seq)).fetchone()
                if row and row["id"] == entry.id:
                    dups += 1
                    continue
                if row:
                    proof = make_fork_proof(decode_header(row["raw"]), entry)
                    fork = proof.encode()
                    record_fork(conn, proof.author, proof.seq, fork)
                    self.changed = True
                    break
            if h.seq != seq + 1 or h.backlink != hid:
                raise StoreError(f"entry seq {h.seq} does not continue the stored log at seq "
                                 f"{seq}", code="not-contiguous")
            seq, hid = h.seq, entry.id
            fresh.append(entry)
        if fresh:
            _insert(conn, fresh)
            missing = record_missing(conn, author, fresh)
            self.fold.apply_many(conn, fresh, self.identity.public)
            self.changed = True
            return IngestResult(len(fresh), dups, fork, missing)
        return IngestResult(0, dups, fork)

    def fill_payloads(self, conn: sqlite3.Connection,
                      frames: list[tuple[bytes, bytes | None]]) -> tuple[int, int]:
        """Store payloads fetched for entries marked missing: (stored, refused).

        A payload is taken only for an entry marked missing and not erased here, and only
        if it matches the size and hash of the stored header (already authentic, so no
        signature check). The entry is then folded, and so are the later entries that name
        it (an update, a claim), since the fold skipped what they referred to.
        """
        filled: list[tuple[int, Entry]] = []
        refused = 0
        for raw, payload in frames:
            row = conn.execute(
                "SELECT rowid, raw, payload IS NULL AND id IN (SELECT id FROM payload_missing) "
                "AS wanted FROM entries WHERE id = ?", (sha256(raw),)).fetchone()
            if row is None or payload is None:
                refused += 1  # an entry we do not hold, or no payload after all
                continue
            if not row["wanted"]:
                continue  # filled meanwhile (another peer was quicker), or never missing
            entry = decode_header(raw)
            try:
                value = check_payload(entry.header, payload)
            except ProtocolError:
                refused += 1
                continue
            if is_erased(conn, entry.id):
                conn.execute("DELETE FROM payload_missing WHERE id = ?", (entry.id,))
                continue
            conn.execute("UPDATE entries SET payload = ? WHERE id = ?", (payload, entry.id))
            conn.execute("DELETE FROM payload_missing WHERE id = ?", (entry.id,))
            filled.append((row["rowid"], Entry(entry.header, raw, entry.id, payload, value)))
        if filled:
            filled.sort(key=lambda x: x[0])
            for _, entry in filled:
                if entry.kind == "redact":
                    _unmark(conn, entry.author, redact_target(entry.payload))
            self.fold.apply_many(conn, _refold(conn, filled), self.identity.public)
            self.changed = True
        return len(filled), refused

    def rebuild(self) -> int:
        return self.transaction(lambda c: self.fold.rebuild(c, self.identity.public))


def _insert(conn: sqlite3.Connection, entries: list[Entry]) -> None:
    """Insert contiguous entries of one log and move its head to the last of them."""
    received = now_ms()
    conn.executemany(
        "INSERT INTO entries (author, seq, id, kind, ts, raw, payload, received) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(e.header.author, e.header.seq, e.id, e.header.kind, e.header.timestamp, e.raw,
          e.payload, received) for e in entries])
    last = entries[-1]
    conn.execute("INSERT INTO heads (author, seq, id) VALUES (?, ?, ?) ON CONFLICT (author) "
                 "DO UPDATE SET seq = excluded.seq, id = excluded.id",
                 (last.header.author, last.header.seq, last.id))


def record_missing(conn: sqlite3.Connection, author: bytes, fresh: list[Entry]) -> int:
    """Mark stored entries without a payload as missing unless their own log redacted
    them or this node erased them (spec §13.3): a peer cannot take a payload away."""
    for e in fresh:  # a redact explains the nil of an entry stored in an earlier batch
        if e.kind == "redact":
            _unmark(conn, author, redact_target(e.payload))
    nil = [e for e in fresh if e.payload is None and e.header.payload_size > 0]
    if not nil:
        return 0
    redacted = {t for a, t in redactions(conn, author)}  # includes this batch: inserted
    missing = [e for e in nil if e.id not in redacted and not is_erased(conn, e.id)]
    received = now_ms()
    conn.executemany("INSERT OR IGNORE INTO payload_missing (id, author, seq, since) "
                     "VALUES (?, ?, ?, ?)", [(e.id, author, e.seq, received) for e in missing])
    return len(missing)


def _unmark(conn: sqlite3.Connection, author: bytes, target: bytes | None) -> None:
    if target is not None:
        conn.execute("DELETE FROM payload_missing WHERE id = ? AND author = ?", (target, author))


def mark_erased(conn: sqlite3.Connection, entry_id: bytes) -> None:
    """Record that this node erased a payload (redact, moderation, retention): it is never
    fetched again nor taken from a peer. Call wherever a payload is set to NULL."""
    conn.execute("INSERT OR IGNORE INTO erased (id, at) VALUES (?, ?)", (entry_id, now_ms()))
    conn.execute("DELETE FROM payload_missing WHERE id = ?", (entry_id,))


def is_erased(conn: sqlite3.Connection, entry_id: bytes) -> bool:
    return conn.execute(
        "SELECT 1 FROM erased WHERE id = ? UNION ALL SELECT 1 FROM moderation WHERE id = ? "
        "AND action = 'erase'", (entry_id, entry_id.hex())).fetchone() is not None


def _refold(conn: sqlite3.Connection, filled: list[tuple[int, Entry]]) -> list[Entry]:
    """The filled entries and every later stored entry whose payload names one of them or
    one of their targets, in store order: folding them again gives the state a fold in
    log order would have (update, withdraw, claims and answers are idempotent)."""
    refs = set()
    for _, e in filled:
        refs.add(e.id)
        refs.update(_ids_in(e.payload or b""))
    first = filled[0][0]
    ids = {e.id for _, e in filled}
    out = [e for _, e in filled]
    order = {e.id: r for r, e in filled}
    for row in conn.execute("SELECT rowid, raw, payload FROM entries WHERE rowid > ? AND "
                            "payload IS NOT NULL ORDER BY rowid", (first,)):
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


def missing_payloads(conn: sqlite3.Connection, upto: dict[bytes, int], limit: int,
                     skip: set[bytes] | frozenset[bytes] = frozenset()) -> list[bytes]:
    """Ids of entries missing a payload whose author is in ``upto`` at or below that seq
    (what a peer advertises), oldest first, leaving out ``skip``."""
    out = []
    for row in conn.execute("SELECT id, author, seq FROM payload_missing ORDER BY since, seq"):
        if row["seq"] <= upto.get(row["author"], 0) and row["id"] not in skip:
            out.append(row["id"])
            if len(out) >= limit:
                break
    return out


def any_missing(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM payload_missing LIMIT 1").fetchone() is not None


def record_fork(conn: sqlite3.Connection, author: bytes, seq: int, proof: bytes) -> bool:
    cur = conn.execute("INSERT OR IGNORE INTO forks (author, seq, proof, found) "
                       "VALUES (?, ?, ?, ?)", (author, seq, proof, now_ms()))
    return cur.rowcount > 0


# -- reads (any connection) ------------------------------------------------------------


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
