"""The ledger: appends and ingests signed entries in one SQLite file.

Synchronous, so the CLI and the async writer (writer.py) share it. What is folded from
the entries (listings, claims, matches) is not the store's business: the state layer
hands its fold in as `Fold`, so the store never imports the layers above it. In the
running node ingest only stores (log first); `project` folds behind a cursor after.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
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
)
from protocol.identity import node_id, sha256

from . import backlog
from .db import connect, migrate, redact_target, redactions
from .logs import head_entry as head_entry
from .logs import heads as heads
from .logs import verify_log as verify_log

T = TypeVar("T")
log = logging.getLogger("aidmesh.store")
FOLD_CHUNK = 256  # entries folded per apply_many call of the projector
INLINE_MAX = 32  # a deferred ingest of at most this many entries is folded at once


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

    def apply(self, conn: sqlite3.Connection, entry: Entry, content: Any, me: bytes) -> None: ...

    def apply_many(self, conn: sqlite3.Connection, entries: list[Entry], me: bytes) -> None: ...

    def eager(self, conn: sqlite3.Connection, entries: list[Entry], me: bytes) -> None: ...

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
        # Log first, fold after: set by the async Store, whose projector then folds what
        # `ingest` stores. Otherwise (the CLI, scripts) ingest folds in its transaction.
        self.deferred = False
        self.pending = False  # entries stored for the projector: the Store wakes it

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
        caught_up = backlog.caught_up(conn)
        rowid = _insert(conn, [entry])
        # Read-your-writes: our own entry is folded now; the projector passes it over.
        self.fold.apply(conn, entry, content, me)
        if caught_up:
            backlog.move(conn, rowid)
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
            # A few entries with nothing waiting before them (gossip of a new post) are
            # folded at once: cheap, and one commit fewer on the way to the next hop.
            inline = not self.deferred or (len(fresh) <= INLINE_MAX and backlog.caught_up(conn))
            _insert(conn, fresh)
            missing = record_missing(conn, author, fresh)
            self.changed = True
            if inline:
                self.project(conn)
            else:
                self.fold.eager(conn, fresh, self.identity.public)
                self.pending = True
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
            # Entries past the projector's cursor are folded by it, payload and all.
            folded = backlog.cursor(conn)
            self.fold.apply_many(conn, backlog.refold(conn, filled, folded, self.identity.public),
                                 self.identity.public)
            self.changed = True
        return len(filled), refused

    def project(self, conn: sqlite3.Connection, limit: int | None = None,
                budget_s: float | None = None) -> int:
        """Fold stored entries past the projector's cursor in store order (so each log in
        its order) and move the cursor with them, in the caller's transaction. At most
        ``limit`` entries, stopping after ``budget_s`` seconds; returns entries passed.

        An entry whose fold fails is logged and passed over: it cannot stall the rest.
        """
        me = self.identity.public
        started = time.monotonic()
        at = backlog.cursor(conn)
        done = 0
        while limit is None or done < limit:
            size = FOLD_CHUNK if limit is None else min(FOLD_CHUNK, limit - done)
            rows = backlog.pending(conn, at, size)
            if not rows:
                break
            runs: list[list[Entry]] = []  # one fold per run of one author, as ingested
            for r in rows:
                if r["author"] == me:
                    continue  # folded when it was written
                e = decode_header(r["raw"])
                if not runs or runs[-1][-1].author != e.author:
                    runs.append([])
                runs[-1].append(Entry(e.header, e.raw, r["id"], r["payload"]))
            for run in runs:
                self._fold_chunk(conn, run)
            at = rows[-1]["rowid"]
            done += len(rows)
            if budget_s is not None and time.monotonic() - started > budget_s:
                break
        if done:
            backlog.move(conn, at)
        return done

    def _fold_chunk(self, conn: sqlite3.Connection, entries: list[Entry]) -> None:
        conn.execute("SAVEPOINT fold")
        try:
            self.fold.apply_many(conn, entries, self.identity.public)
            conn.execute("RELEASE fold")
            return
        except Exception:  # noqa: BLE001 - retried one by one below
            conn.execute("ROLLBACK TO fold")
            conn.execute("RELEASE fold")
        for entry in entries:
            conn.execute("SAVEPOINT fold")
            try:
                self.fold.apply_many(conn, [entry], self.identity.public)
            except Exception:  # noqa: BLE001 - logged and passed over
                conn.execute("ROLLBACK TO fold")
                log.exception("could not fold entry %s; passed over", entry.id.hex())
            conn.execute("RELEASE fold")

    def rebuild(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            count = self.fold.rebuild(conn, self.identity.public)
            backlog.move(conn, conn.execute(
                "SELECT coalesce(max(rowid), 0) FROM entries").fetchone()[0])
            return count

        return self.transaction(run)


def _insert(conn: sqlite3.Connection, entries: list[Entry]) -> int:
    """Insert contiguous entries of one log and move its head to the last of them;
    returns the rowid of the last."""
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
    return conn.execute("SELECT rowid FROM entries WHERE id = ?", (last.id,)).fetchone()[0]


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
