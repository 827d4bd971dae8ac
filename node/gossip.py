"""Outbound federation: anti-entropy rounds with each peer, notify, backoff, progress.

One task per peer. A round: GET /state with If-None-Match (304 = in sync, done), else
compare heads with ours inside our replication scope, pull the missing suffixes page by
page, verify off the event loop, store, and repeat while the scope grows (new trust
entries reveal the next hop). A dead or slow peer only ever delays its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp

from protocol import (
    Entry,
    ProtocolError,
    check_signature,
    decode_fork_proof,
    decode_header,
    verify_chain,
)
from protocol.sync import (
    PAGE_MAX_ENTRIES,
    FrameDecoder,
    Head,
    decode_state,
    encode_want,
    state_digest,
)

from . import store as st
from .httpsig import sign_request
from .trust import Peer, direct_peers, scope

log = logging.getLogger("aidmesh.gossip")
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5, sock_read=10)
BACKOFF_START_S = 2.0
BACKOFF_CAP_S = 300.0
MAX_WANT_PER_PULL = 2000
SAVE_EVERY_S = 10.0


class SyncFailed(Exception):
    pass


@dataclass
class PeerLink:
    peer: Peer
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    failures: int = 0
    digest: str | None = None  # ETag of the peer's state we are fully in sync with
    last_success: int | None = None
    last_error: str | None = None
    last_error_at: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    entries_in: int = 0
    behind: int | None = None
    syncing: bool = False
    saved_at: float = 0.0  # monotonic time of the last save to peer_state

    def delay(self, interval: float) -> float:
        if self.failures:
            base = min(BACKOFF_CAP_S, BACKOFF_START_S * 2 ** (self.failures - 1))
        else:
            base = interval
        return base * random.uniform(0.8, 1.2)

    def as_json(self) -> dict:
        return {
            "id": "am" + self.peer.id.hex(),
            "url": self.peer.url,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "entries_behind": self.behind,
            "entries_in": self.entries_in,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "failures": self.failures,
            "syncing": self.syncing,
        }


class Gossip:
    """Owns the peer tasks and the HTTP client session of one node."""

    def __init__(self, node) -> None:
        self.node = node
        self.links: dict[bytes, PeerLink] = {}
        self.session: aiohttp.ClientSession | None = None
        self._dirty = asyncio.Event()
        self._notifier: asyncio.Task | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(
            limit_per_host=3))
        self.node.store.on_change.append(self.changed)
        await self.refresh()
        self._notifier = asyncio.create_task(self._notify_loop(), name="aidmesh-notify")

    async def stop(self) -> None:
        self._closing = True
        for link in list(self.links.values()):
            await self._save(link, force=True)
        tasks = [t for t in [self._notifier, *(k.task for k in self.links.values())] if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session:
            await self.session.close()

    async def refresh(self) -> None:
        """Start or stop peer tasks to match the trust entries in our own log."""
        peers = await self.node.store.read(
            lambda c: direct_peers(c, self.node.identity.public))
        wanted = {p.id: p for p in peers}
        for pid in list(self.links):
            if pid not in wanted:
                link = self.links.pop(pid)
                if link.task:
                    link.task.cancel()
        for pid, peer in wanted.items():
            link = self.links.get(pid)
            if link is None:
                link = self.links[pid] = PeerLink(peer)
                link.task = asyncio.create_task(self._peer_loop(link), name=f"peer-{pid.hex()[:8]}")
                link.wake.set()
            elif link.peer.url != peer.url:
                link.peer = peer
                link.wake.set()

    def resync(self) -> None:
        """Forget what each peer's state looked like: the next round compares in full.

        Needed when our scope changes without any entry (a block is lifted), since the
        peer's state digest alone would say nothing changed.
        """
        for link in self.links.values():
            link.digest = None
            link.wake.set()

    def trusted(self) -> set[bytes]:
        return set(self.links)

    # -- triggers --------------------------------------------------------------------------

    def changed(self) -> None:
        """Entries were stored: tell peers (debounced), and pick up peer list changes."""
        self._dirty.set()

    def poke(self, peer_id: bytes) -> None:
        link = self.links.get(peer_id)
        if link:
            link.wake.set()

    def record_inbound(self, peer_id: bytes, size: int) -> None:
        link = self.links.get(peer_id)
        if link:
            link.bytes_in += size

    def record_outbound(self, peer_id: bytes, size: int) -> None:
        link = self.links.get(peer_id)
        if link:
            link.bytes_out += size

    async def _notify_loop(self) -> None:
        # Checked, not `while True`: Python 3.11's wait_for swallows a cancel that lands as
        # _dirty is set, and stop() would then wait for this loop forever.
        while not self._closing:
            try:
                # Wake on our own commits; poll now and then for peers added by the CLI.
                await asyncio.wait_for(self._dirty.wait(), timeout=5)
            except TimeoutError:
                await self.refresh()
                continue
            self._dirty.clear()
            await self.refresh()
            await asyncio.gather(*(self._notify(k) for k in list(self.links.values())),
                                 return_exceptions=True)
            await asyncio.sleep(0.02)  # coalesce bursts of commits into one notify

    async def _notify(self, link: PeerLink) -> None:
        try:
            async with self._request(link, "POST", "/notify", b"") as resp:
                await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass  # the periodic round will catch up; notify is only a hint

    # -- rounds ----------------------------------------------------------------------------

    async def _peer_loop(self, link: PeerLink) -> None:
        interval = self.node.config.gossip_interval_s
        while not self._closing:
            try:
                await asyncio.wait_for(link.wake.wait(), link.delay(interval))
            except TimeoutError:
                pass
            link.wake.clear()
            try:
                await self.sync_once(link)
                link.failures = 0
                link.last_success = st.now_ms()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure backs off this peer only
                link.failures += 1
                link.last_error = _describe(exc)
                link.last_error_at = st.now_ms()
                log.warning(json.dumps({"event": "sync-failed", "peer": "am" + link.peer.id.hex(),
                                        "error": link.last_error, "failures": link.failures}))
            finally:
                link.syncing = False
            await self._save(link)

    def _request(self, link: PeerLink, method: str, path: str, body: bytes | None,
                 headers: dict[str, str] | None = None):
        assert self.session is not None
        url = link.peer.url.rstrip("/") + "/federation/v1" + path
        signed = sign_request(self.node.identity, method, url, body or None, headers)
        if body:
            signed["Content-Type"] = "application/x-aidmesh"
        link.bytes_out += len(body or b"")
        return self.session.request(method, url, data=body or None, headers=signed)

    async def sync_once(self, link: PeerLink) -> int:
        """One anti-entropy round with a peer; returns entries stored."""
        link.syncing = True
        headers = {"If-None-Match": link.digest} if link.digest else {}
        async with self._request(link, "GET", "/state", None, headers) as resp:
            if resp.status == 304:
                link.behind = 0
                return 0
            body = await resp.read()
            link.bytes_in += len(body)
            if resp.status != 200:
                raise SyncFailed(f"state: HTTP {resp.status}: {body[:200]!r}")
        theirs, forks = decode_state(body)
        await self._take_forks(forks)
        stored = 0
        me = self.node.identity.public
        for _ in range(self.node.config.hops + 1):
            want = await self.node.store.read(lambda c: self._want(c, theirs, me))
            if not want:
                break
            got, complete = await self._pull(link, want, theirs)
            stored += got
            if not complete or not got:  # nothing stored: the scope cannot have grown
                break
        else:
            complete = True
        suspects = await self.node.store.read(lambda c: self._suspects(c, theirs, me))
        if suspects:
            await self._probe_forks(link, suspects)
        remaining = await self.node.store.read(lambda c: self._want(c, theirs, me))
        link.behind = sum(theirs[a].seq - after for a, after in remaining.items())
        if not remaining:
            link.digest = '"' + state_digest(body).hex() + '"'
        return stored

    def _want(self, conn: sqlite3.Connection, theirs: dict[bytes, Head], me: bytes
              ) -> dict[bytes, int]:
        authors = scope(conn, me, self.node.config.hops)
        ours = st.heads(conn)
        frozen = {r[0] for r in conn.execute("SELECT author FROM forks")}
        want = {}
        for author, head in theirs.items():
            if author not in authors or author in frozen or author == me:
                continue
            have = ours[author].seq if author in ours else 0
            if head.seq > have:
                want[author] = have
        return want

    async def _take_forks(self, proofs: Iterable[bytes]) -> None:
        known = await self.node.store.read(
            lambda c: {r[0] for r in c.execute("SELECT author FROM forks")})
        for raw in proofs:
            try:
                proof = decode_fork_proof(raw)
            except ProtocolError as exc:
                log.warning(json.dumps({"event": "bad-fork-proof", "error": str(exc)}))
                continue
            if proof.author in known:
                continue
            await self.node.store.write(lambda c, p=proof: self._record_fork(c, p))
            known.add(proof.author)
            log.warning(json.dumps({"event": "fork", "detail": proof.describe()}))

    def _record_fork(self, conn: sqlite3.Connection, proof) -> None:
        # Mark the change inside the write so the commit bumps the store version: the
        # cached /state (which serves fork proofs) is rebuilt and peers are notified.
        if st.record_fork(conn, proof.author, proof.seq, proof.encode()):
            self.node.store.ledger.changed = True

    def _suspects(self, conn: sqlite3.Connection, theirs: dict[bytes, Head], me: bytes
                  ) -> dict[bytes, int]:
        """Logs where the peer may hold another version than ours: author -> the seq to
        compare (the highest seq both hold). Either the peer's head sits at or below ours
        with another id, or a pull could not continue our head (its run did not link)."""
        authors = scope(conn, me, self.node.config.hops)
        ours = st.heads(conn)
        frozen = {r[0] for r in conn.execute("SELECT author FROM forks")}
        out = {}
        for author, head in theirs.items():
            mine = ours.get(author)
            if mine is None or author not in authors or author in frozen or author == me:
                continue
            if head.seq > mine.seq:
                out[author] = mine.seq
            else:
                row = conn.execute("SELECT id FROM entries WHERE author = ? AND seq = ?",
                                   (author, head.seq)).fetchone()
                if row is not None and row[0] != head.id:
                    out[author] = head.seq
        return out

    async def _probe_forks(self, link: PeerLink, suspects: dict[bytes, int]) -> None:
        """Fetch the peer's entry at each suspect seq; one signed entry that differs from
        ours at the same seq is a fork: the store keeps the proof and freezes the log."""
        ledger = self.node.store.ledger
        targets = dict(suspects)
        async with contextlib.aclosing(
                self._stream(link, {a: s - 1 for a, s in targets.items()})) as pages:
            async for frames in pages:
                for raw, _ in frames:
                    try:
                        entry = decode_header(raw)
                        if targets.get(entry.author) != entry.seq:
                            continue
                        check_signature(entry)
                    except ProtocolError:
                        continue
                    del targets[entry.author]
                    result = await self.node.store.write(
                        lambda c, e=entry: ledger.ingest(c, e.author, [e]))
                    if result.fork:
                        self._author_failed(link, {}, entry.author,
                                            f"fork at seq {entry.seq}: the log is frozen")
                if not targets:
                    break

    async def _pull(self, link: PeerLink, want: dict[bytes, int],
                    theirs: dict[bytes, Head]) -> tuple[int, bool]:
        """Pull until every wanted author reaches the peer's head; False if it stopped short.

        Pages are pipelined: page k+1 is verified (Python, a worker thread) while page k
        is committed (mostly SQLite, the writer thread, which releases the GIL). Each page
        commits on its own, so a cut connection loses at most the pages in flight and the
        next round resumes from our stored heads.
        """
        stored = 0
        started = time.monotonic()
        want = dict(want)
        loop = asyncio.get_running_loop()
        while want:
            batch = dict(sorted(want.items())[:MAX_WANT_PER_PULL])
            # The newest verified entry per author: the next page must continue it.
            tails = await self.node.store.read(
                lambda c, b=batch: {a: st.head_entry(c, a) for a in b})
            served: list[bytes] = []
            writes: list[asyncio.Future[int]] = []
            try:
                async for frames in self._stream(link, batch):
                    groups, bad_frame = _group(frames)
                    served.extend(a for a in groups if a not in served)
                    verified = await loop.run_in_executor(
                        None, _verify_groups, groups, dict(tails))
                    for author, (entries, error) in verified.items():
                        if entries:
                            tails[author] = entries[-1]
                            if author in want:
                                want[author] = entries[-1].seq
                        if error:
                            self._author_failed(link, want, author, error)
                        elif author in want and want[author] >= theirs[author].seq:
                            want.pop(author)
                    writes.append(asyncio.ensure_future(self._commit(link, verified, want)))
                    if len(writes) >= 4:  # up to 4 pages queued: the writer merges them
                        stored += await writes.pop(0)
                    if bad_frame:
                        raise SyncFailed(f"peer sent a malformed entry ({bad_frame}); kept "
                                         "what came before it")
                    link.behind = sum(theirs[a].seq - s for a, s in want.items())
                    if time.monotonic() - started > 5:
                        started = time.monotonic()
                        log.info(json.dumps({"event": "sync-progress", "stored": stored,
                                             "peer": "am" + link.peer.id.hex(),
                                             "behind": link.behind}))
            finally:
                for result in await asyncio.gather(*writes, return_exceptions=True):
                    if isinstance(result, BaseException):
                        raise result
                    stored += result
            if not served:
                return stored, False  # the peer has less than it advertised; try later
            last = max(served)
            for author in batch:  # authors the stream passed without sending: nothing there
                if author < last and author not in served:
                    want.pop(author, None)
                elif author in served and want.get(author) == batch[author]:
                    # Sent only entries we already hold: asking again would loop forever.
                    want.pop(author, None)
        return stored, True

    def _author_failed(self, link: PeerLink, want: dict[bytes, int], author: bytes,
                       error: str) -> None:
        """Reject that author's remainder for this round; other authors go on."""
        link.last_error = f"am{author.hex()}: {error}"
        link.last_error_at = st.now_ms()
        want.pop(author, None)
        log.warning(json.dumps({"event": "rejected", "peer": "am" + link.peer.id.hex(),
                                "author": "am" + author.hex(), "error": error}))

    async def _stream(self, link: PeerLink, want: dict[bytes, int]):
        """Yield the frames of one pull response in pages of at most PAGE_MAX_ENTRIES."""
        async with self._request(link, "POST", "/pull", encode_want(want)) as resp:
            if resp.status != 200:
                text = await resp.read()
                raise SyncFailed(f"pull: HTTP {resp.status}: {text[:200]!r}")
            decoder = FrameDecoder()
            frames: list[tuple[bytes, bytes | None]] = []
            async for chunk in resp.content.iter_chunked(256 * 1024):
                link.bytes_in += len(chunk)
                frames.extend(decoder.feed(chunk))
                while len(frames) >= PAGE_MAX_ENTRIES:
                    yield frames[:PAGE_MAX_ENTRIES]
                    frames = frames[PAGE_MAX_ENTRIES:]
            decoder.close()
            if frames:
                yield frames

    async def _commit(self, link: PeerLink,
                      verified: dict[bytes, tuple[list[Entry], str | None]],
                      want: dict[bytes, int]) -> int:
        """Store one verified page in one transaction; returns entries stored."""
        ledger = self.node.store.ledger

        def ingest_all(conn: sqlite3.Connection) -> dict[bytes, st.IngestResult | str]:
            results: dict[bytes, st.IngestResult | str] = {}
            for author, (entries, _) in verified.items():
                if entries:
                    try:
                        results[author] = ledger.ingest(conn, author, entries)
                    except st.StoreError as exc:
                        results[author] = exc.detail
            return results

        results = await self.node.store.write(ingest_all)
        stored = 0
        for author, result in results.items():
            if isinstance(result, str):
                self._author_failed(link, want, author, result)
                continue
            stored += result.stored
            if result.fork:
                self._author_failed(link, want, author, "fork: the log is frozen")
        link.entries_in += stored
        return stored

    async def _save(self, link: PeerLink, *, force: bool = False) -> None:
        """Persist progress for `aidmesh peer list`; at most every SAVE_EVERY_S per peer,
        since every round would otherwise cost a durable commit (the API reads live)."""
        now = time.monotonic()
        if not force and not link.failures and now - link.saved_at < SAVE_EVERY_S:
            return
        link.saved_at = now

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO peer_state (peer, last_success, last_error, last_error_at, "
                "bytes_in, bytes_out, entries_in, behind) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (peer) DO UPDATE SET last_success = excluded.last_success, "
                "last_error = excluded.last_error, last_error_at = excluded.last_error_at, "
                "bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, "
                "entries_in = excluded.entries_in, behind = excluded.behind",
                (link.peer.id, link.last_success, link.last_error, link.last_error_at,
                 link.bytes_in, link.bytes_out, link.entries_in, link.behind))

        try:
            await self.node.store.write(save)
        except Exception:  # noqa: BLE001 - progress bookkeeping must not kill the loop
            log.exception("could not save peer progress")


def _group(frames: list[tuple[bytes, bytes | None]]
           ) -> tuple[dict[bytes, list[tuple[Entry, bytes | None]]], str | None]:
    """Decode each header once and group frames by author, in stream order.

    A frame whose header does not even decode ends the page there: without a valid
    header we cannot tell whose log it belongs to, so nothing after it is trusted.
    """
    groups: dict[bytes, list[tuple[Entry, bytes | None]]] = {}
    for raw, payload in frames:
        try:
            entry = decode_header(raw)
        except ProtocolError as exc:
            return groups, f"{exc.code}: {exc.detail}"
        groups.setdefault(entry.header.author, []).append((entry, payload))
    return groups, None


def _verify_groups(groups: dict[bytes, list[tuple[Entry, bytes | None]]],
                   previous: dict[bytes, Entry | None]
                   ) -> dict[bytes, tuple[list[Entry], str | None]]:
    """Verify each author's run; on failure keep the valid prefix and report the rest."""
    now = st.now_ms()
    out: dict[bytes, tuple[list[Entry], str | None]] = {}
    for author, items in groups.items():
        prev = previous.get(author)
        if prev is not None:  # skip what we already hold (a concurrent pull stored it)
            items = [(e, p) for e, p in items if e.seq > prev.seq]
            if not items:
                continue
        entries, payloads = [e for e, _ in items], [p for _, p in items]
        try:
            out[author] = (verify_chain(entries, payloads, previous=prev, now_ms=now), None)
            continue
        except ProtocolError as exc:
            first_error = f"{exc.code}: {exc.detail}"
        good: list[Entry] = []
        for entry, payload in items:  # one signature per entry keeps the honest prefix
            try:
                good.extend(verify_chain([entry], [payload], now_ms=now,
                                         previous=good[-1] if good else prev))
            except ProtocolError as exc:
                first_error = f"{exc.code}: {exc.detail}"
                break
        out[author] = (good, first_error)
    return out


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:500]
