"""Replication over the store: what this node serves to peers and what it wants from them.

The federation package speaks HTTP; every read and write it needs is here, so the rules
(scope, frozen logs, what counts as behind) live in one place below the interfaces.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol import Entry, ForkProof, ProtocolError
from protocol.sync import (
    PAGE_MAX_BYTES,
    PAGE_MAX_ENTRIES,
    Head,
    decode_state,
    encode_frame,
    encode_state,
)

from ..state.trust import Peer, direct_peers, scope
from ..store.ledger import (
    IngestResult,
    Ledger,
    StoreError,
    any_missing,
    head_entry,
    heads,
    missing_payloads,
    record_fork,
)

__all__ = ["Peer", "direct_peers"]


def frozen(conn: sqlite3.Connection) -> dict[bytes, int]:
    """Forked logs and the seq they are frozen at."""
    return {r["author"]: r["seq"] for r in conn.execute("SELECT author, seq FROM forks")}


# -- serving ---------------------------------------------------------------------------------


def served_state(conn: sqlite3.Connection, me: bytes, hops: int) -> bytes:
    """The state message: heads and fork proofs of the authors in this node's scope.

    A log frozen at fork seq s is advertised at s - 1 (left out if s = 1), the newest
    entry `plan_pull` serves of it, so a peer is never told of entries it cannot get."""
    authors = scope(conn, me, hops)
    ours = {r["author"]: Head(r["seq"], r["id"]) for r in conn.execute(
        "SELECT e.author, e.seq, e.id FROM heads h LEFT JOIN forks f ON f.author = h.author "
        "JOIN entries e ON e.author = h.author AND e.seq = min(h.seq, coalesce(f.seq - 1, h.seq))"
    ) if r["author"] in authors}
    forks = [r["proof"] for r in conn.execute("SELECT author, proof FROM forks")
             if r["author"] in authors]
    return encode_state(ours, forks)


@dataclass
class PullCursor:
    """Where a pull response stands: index into the wanted authors, last seq sent."""

    authors: list[tuple[bytes, int, int]]  # (author, after, last seq we may serve)
    index: int = 0


def plan_pull(conn: sqlite3.Connection, me: bytes, hops: int, want: dict[bytes, int]
              ) -> PullCursor:
    authors = scope(conn, me, hops)
    stops = frozen(conn)
    # A forked log is served only below the fork point: it is frozen there.
    return PullCursor([(a, want[a], stops.get(a, 2**62) - 1)
                       for a in sorted(want) if a in authors])


def next_page(conn: sqlite3.Connection, cur: PullCursor) -> tuple[bytes, int]:
    """One page: at most PAGE_MAX_ENTRIES entries and PAGE_MAX_BYTES bytes of frames."""
    frames: list[bytes] = []
    size = 0
    while cur.index < len(cur.authors):
        author, after, last = cur.authors[cur.index]
        rows = conn.execute(
            "SELECT seq, raw, payload FROM entries WHERE author = ? AND seq > ? AND seq <= ? "
            "ORDER BY seq LIMIT ?", (author, after, last, PAGE_MAX_ENTRIES - len(frames)))
        for row in rows:
            frame = msgpack.packb([row["raw"], row["payload"]], use_bin_type=True)
            if frames and size + len(frame) > PAGE_MAX_BYTES:
                return b"".join(frames), len(frames)
            frames.append(frame)
            size += len(frame)
            after = row["seq"]
            cur.authors[cur.index] = (author, after, last)
        if len(frames) >= PAGE_MAX_ENTRIES:
            break
        cur.index += 1
    return b"".join(frames), len(frames)


# -- pulling -----------------------------------------------------------------------------------


def want(conn: sqlite3.Connection, theirs: dict[bytes, Head], me: bytes, hops: int
         ) -> dict[bytes, int]:
    """Authors in scope where the peer is ahead of us: author -> our seq."""
    authors = scope(conn, me, hops)
    ours = heads(conn)
    stops = frozen(conn)
    out = {}
    for author, head in theirs.items():
        if author not in authors or author in stops or author == me:
            continue
        have = ours[author].seq if author in ours else 0
        if head.seq > have:
            out[author] = have
    return out


def suspects(conn: sqlite3.Connection, theirs: dict[bytes, Head], me: bytes, hops: int
             ) -> dict[bytes, int]:
    """Logs where the peer may hold another version than ours: author -> the seq to
    compare (the highest seq both hold). Either the peer's head sits at or below ours
    with another id, or a pull could not continue our head (its run did not link)."""
    authors = scope(conn, me, hops)
    ours = heads(conn)
    stops = frozen(conn)
    out = {}
    for author, head in theirs.items():
        mine = ours.get(author)
        if mine is None or author not in authors or author in stops or author == me:
            continue
        if head.seq > mine.seq:
            out[author] = mine.seq
        else:
            row = conn.execute("SELECT id FROM entries WHERE author = ? AND seq = ?",
                               (author, head.seq)).fetchone()
            if row is not None and row[0] != head.id:
                out[author] = head.seq
    return out


def tails(conn: sqlite3.Connection, authors: Any) -> dict[bytes, Entry | None]:
    """The newest stored entry per author: the next page must continue it."""
    return {a: head_entry(conn, a) for a in authors}


def take_forks(ledger: Ledger, conn: sqlite3.Connection, proofs: list[ForkProof],
               me: bytes, hops: int, cap: int) -> list[ForkProof]:
    """Store verified fork proofs of authors in our scope that are not frozen yet, at most
    ``cap`` of them, in one transaction; returns the ones stored."""
    authors = scope(conn, me, hops)
    stops = frozen(conn)
    taken: list[ForkProof] = []
    for proof in proofs:
        if len(taken) >= cap:
            break
        if proof.author not in authors or proof.author in stops:
            continue  # (our own log is in scope: a proof against it freezes it too)
        if record_fork(conn, proof.author, proof.seq, proof.encode()):
            # A change, so the commit bumps the store version: the cached /state (which
            # serves fork proofs) is rebuilt and peers are notified.
            ledger.changed = True
            stops[proof.author] = proof.seq
            taken.append(proof)
    return taken


def in_scope(conn: sqlite3.Connection, me: bytes, hops: int) -> set[bytes]:
    """Authors in this node's scope (itself included) whose logs are not frozen yet."""
    return set(scope(conn, me, hops)) - set(frozen(conn))


# -- payloads (spec §13.4) -------------------------------------------------------------------


def missing_ids(conn: sqlite3.Connection, theirs: dict[bytes, Head], limit: int,
                skip: set[bytes]) -> list[bytes]:
    """Entries missing a payload that the peer's state says it holds."""
    if not any_missing(conn):
        return []
    return missing_payloads(conn, {a: h.seq for a, h in theirs.items()}, limit, skip)


def fill(ledger: Ledger, conn: sqlite3.Connection,
         frames: list[tuple[bytes, bytes | None]]) -> tuple[int, int]:
    return ledger.fill_payloads(conn, frames)


def served_payloads(conn: sqlite3.Connection, me: bytes, hops: int, ids: list[bytes]
                    ) -> bytes:
    """One page of [signed header, payload] frames for the asked entries whose payload
    this node holds, of authors in its scope and below any fork point, in id order."""
    authors = scope(conn, me, hops)
    stops = frozen(conn)
    frames: list[bytes] = []
    size = 0
    for entry_id in ids:
        row = conn.execute("SELECT author, seq, raw, payload FROM entries WHERE id = ? AND "
                           "payload IS NOT NULL", (entry_id,)).fetchone()
        if row is None or row["author"] not in authors or \
                row["seq"] >= stops.get(row["author"], 2**62):
            continue
        frame = encode_frame(row["raw"], row["payload"])
        if len(frames) >= PAGE_MAX_ENTRIES or size + len(frame) > PAGE_MAX_BYTES:
            break
        frames.append(frame)
        size += len(frame)
    return b"".join(frames)


def ingest(ledger: Ledger, conn: sqlite3.Connection,
           verified: dict[bytes, tuple[list[Entry], str | None]]
           ) -> dict[bytes, IngestResult | str]:
    """Store one verified page; per author the result or the reason it was refused."""
    results: dict[bytes, IngestResult | str] = {}
    for author, (entries, _) in verified.items():
        if entries:
            try:
                results[author] = ledger.ingest(conn, author, entries)
            except StoreError as exc:
                results[author] = exc.detail
    return results


def save_progress(conn: sqlite3.Connection, peer: bytes, progress: dict[str, Any],
                  advertised: bytes | None) -> None:
    """Persist a peer's sync figures and its last state message, for `aidmesh peer list`."""
    conn.execute(
        "INSERT INTO peer_state (peer, last_success, last_error, last_error_at, bytes_in, "
        "bytes_out, entries_in, behind, advertised, rejected) VALUES (:peer, :last_success, "
        ":last_error, :last_error_at, :bytes_in, :bytes_out, :entries_in, :entries_behind, "
        ":advertised, :rejected) ON CONFLICT (peer) DO UPDATE SET "
        "last_success = excluded.last_success, "
        "last_error = excluded.last_error, last_error_at = excluded.last_error_at, "
        "bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, "
        "entries_in = excluded.entries_in, behind = excluded.behind, "
        "advertised = coalesce(excluded.advertised, advertised), rejected = excluded.rejected",
        {"rejected": 0, **progress, "peer": peer, "advertised": advertised})


def behind(conn: sqlite3.Connection, advertised: bytes, me: bytes, hops: int) -> int | None:
    """Entries in scope the peer advertised that this node does not hold yet."""
    try:
        theirs, _ = decode_state(advertised)
    except ProtocolError:
        return None
    return sum(theirs[a].seq - after for a, after in want(conn, theirs, me, hops).items())
