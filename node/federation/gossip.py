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
import time

import aiohttp

from protocol import Entry, ProtocolError, check_signature, decode_header
from protocol.sync import (
    MAX_STATE_SIZE,
    PAGE_MAX_BYTES,
    PAGE_MAX_ENTRIES,
    PULL_MAX_BYTES,
    PULL_MAX_FRAMES,
    FrameDecoder,
    Head,
    decode_state,
    encode_want,
    state_digest,
)

from ..outbound import Client
from ..services import replication
from ..store.ledger import IngestResult, now_ms
from . import fetch
from .httpsig import sign_request
from .link import PeerLink, SyncFailed, describe, http_error
from .verify import group, screen, verify_groups

log = logging.getLogger("aidmesh.gossip")
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5, sock_read=10)
MAX_WANT_PER_PULL = 2000
SAVE_EVERY_S = 10.0
ERROR_BODY_MAX = 2048  # of a peer's error answer, only the start is read


class Gossip:
    """Owns the peer tasks and the HTTP client session of one node."""

    def __init__(self, node) -> None:
        self.node = node
        self.links: dict[bytes, PeerLink] = {}
        self.client: Client | None = None
        self._dirty = asyncio.Event()
        self._notifier: asyncio.Task | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.client = Client(self.node.config, webhooks=False, timeout=TIMEOUT,
                             limit_per_host=3)
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
        if self.client:
            await self.client.close()

    async def refresh(self) -> None:
        """Start or stop peer tasks to match the trust entries in our own log."""
        peers = await self.node.store.read(
            lambda c: replication.direct_peers(c, self.node.identity.public))
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
            link.asked.clear()  # it stored something: it may hold payloads it lacked
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
            async with self.request(link, "POST", "/notify", b"") as resp:
                await resp.content.read(ERROR_BODY_MAX)
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
                link.last_success = now_ms()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure backs off this peer only
                link.failures += 1
                link.last_error = describe(exc)
                link.last_error_at = now_ms()
                log.warning(json.dumps({"event": "sync-failed", "peer": "am" + link.peer.id.hex(),
                                        "error": link.last_error, "failures": link.failures}))
            finally:
                link.syncing = False
            await self._save(link)

    def request(self, link: PeerLink, method: str, path: str, body: bytes | None,
                headers: dict[str, str] | None = None):
        assert self.client is not None
        url = link.peer.url.rstrip("/") + "/federation/v1" + path
        signed = sign_request(self.node.identity, method, url, body or None, headers)
        if body:
            signed["Content-Type"] = "application/x-aidmesh"
        link.bytes_out += len(body or b"")
        return self.client.request(method, url, data=body or None, headers=signed)

    async def sync_once(self, link: PeerLink) -> int:
        """One anti-entropy round with a peer; returns entries stored."""
        link.syncing = True
        headers = {"If-None-Match": link.digest} if link.digest else {}
        async with self.request(link, "GET", "/state", None, headers) as resp:
            if resp.status not in (200, 304):
                raise SyncFailed(http_error("state", resp.status,
                                            await resp.content.read(ERROR_BODY_MAX)))
            body = await link.read(resp, MAX_STATE_SIZE, "state") if resp.status == 200 \
                else None
        if body is None:  # 304: in sync, but payloads we lack may have reached the peer
            link.behind = 0
            await fetch.payloads(self, link, link.heads)
            return 0
        theirs, forks = decode_state(body)
        link.advertised, link.heads = body, theirs
        more_forks = await fetch.forks(self, link, forks)
        stored = 0
        me, hops = self.node.identity.public, self.node.config.hops
        link.dropped.clear()  # authors refused in this round are not asked again in it
        for _ in range(hops + 1):
            want = await self.node.store.read(lambda c: replication.want(c, theirs, me, hops))
            want = {a: s for a, s in want.items() if a not in link.dropped}
            if not want:
                break
            got, complete = await self._pull(link, want, theirs)
            stored += got
            if not complete or not got:  # nothing stored: the scope cannot have grown
                break
        else:
            complete = True
        suspects = await self.node.store.read(lambda c: replication.suspects(c, theirs, me, hops))
        if suspects:
            await self._probe_forks(link, suspects)
        await fetch.payloads(self, link, theirs)
        remaining = await self.node.store.read(lambda c: replication.want(c, theirs, me, hops))
        link.behind = sum(theirs[a].seq - after for a, after in remaining.items())
        if not remaining and not more_forks:
            link.digest = '"' + state_digest(body).hex() + '"'
        return stored

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
                            if entry.author not in suspects:
                                link.reject(1, f"not-asked: entries of am"
                                               f"{entry.author.hex()} were not asked for")
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
            tails = await self.node.store.read(lambda c, b=batch: replication.tails(c, b))
            served: list[bytes] = []
            writes: list[asyncio.Future[int]] = []
            expect = {a: after + 1 for a, after in batch.items()}  # each author's next seq
            try:
                async for frames in self._stream(link, batch):
                    groups, bad_frame = group(frames)
                    # Only what was asked, where it was asked: before any signature work.
                    groups, dropped, why = screen(groups, expect)
                    if dropped:
                        link.reject(dropped, why or "")
                        for author in [a for a in batch if a not in expect and a in want]:
                            self._author_failed(link, want, author, why or "")
                    served.extend(a for a in groups if a not in served)
                    verified = await loop.run_in_executor(
                        None, verify_groups, groups, dict(tails))
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
        link.last_error_at = now_ms()
        want.pop(author, None)
        link.dropped.add(author)
        log.warning(json.dumps({"event": "rejected", "peer": "am" + link.peer.id.hex(),
                                "author": "am" + author.hex(), "error": error}))

    async def _stream(self, link: PeerLink, want: dict[bytes, int]):
        """Yield the frames of one pull response in pages of at most PAGE_MAX_ENTRIES
        frames and about PAGE_MAX_BYTES; a response past the spec's size is cut off."""
        async with self.request(link, "POST", "/pull", encode_want(want)) as resp:
            if resp.status != 200:
                raise SyncFailed(http_error("pull", resp.status,
                                            await resp.content.read(ERROR_BODY_MAX)))
            decoder = FrameDecoder()
            frames: list[tuple[bytes, bytes | None]] = []
            size = total = count = 0
            async for chunk in resp.content.iter_chunked(256 * 1024):
                link.bytes_in += len(chunk)
                total += len(chunk)
                for frame in decoder.feed(chunk):
                    frames.append(frame)
                    size += len(frame[0]) + len(frame[1] or b"")
                    count += 1
                    if len(frames) >= PAGE_MAX_ENTRIES or size >= PAGE_MAX_BYTES:
                        yield frames
                        frames, size = [], 0
                if total > PULL_MAX_BYTES or count > PULL_MAX_FRAMES:
                    resp.close()
                    raise SyncFailed(f"pull: the peer sent more than a response may hold "
                                     f"({PULL_MAX_FRAMES} frames, {PULL_MAX_BYTES} bytes)")
            decoder.close()
            if frames:
                yield frames

    async def _commit(self, link: PeerLink,
                      verified: dict[bytes, tuple[list[Entry], str | None]],
                      want: dict[bytes, int]) -> int:
        """Store one verified page in one transaction; returns entries stored."""
        results: dict[bytes, IngestResult | str] = await self.node.store.write(
            lambda c: replication.ingest(self.node.store.ledger, c, verified))
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
        fresh = link.advertised is not link.saved_advertised
        if not (force or fresh or link.failures) and now - link.saved_at < SAVE_EVERY_S:
            return
        link.saved_at = now
        progress = link.as_json()
        advertised = link.saved_advertised = link.advertised
        try:
            await self.node.store.write(
                lambda c: replication.save_progress(c, link.peer.id, progress, advertised))
        except Exception:  # noqa: BLE001 - progress bookkeeping must not kill the loop
            log.exception("could not save peer progress")
