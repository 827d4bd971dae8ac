"""The async writer: one task that group-commits concurrent writes, reads in a pool.

Each write runs in its own savepoint so one failure never undoes another. Commits made
by another process on the same data dir (the CLI) are noticed through
`PRAGMA data_version` and announced exactly like the writer's own.

Log first, fold after: ingest only stores entries; the projector task folds them into
state behind a cursor (`Ledger.project`), in batches that go through the same writer,
so each fold commits with its cursor and new events wake listeners like any write.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from protocol import Identity

from .backlog import caught_up as _caught_up
from .db import connect, events_head
from .ledger import Ledger

T = TypeVar("T")
MAX_GROUP_COMMIT = 256
PROJECT_BATCH = 4096  # entries per projector job at most ...
PROJECT_BUDGET_S = 0.25  # ... and about this long, so other writes wait little
PROJECT_YIELD_S = 1.0  # at most this long the projector waits for queued writes to go
FOREIGN_POLL_S = 0.25  # how often to look for commits made by another process
log = logging.getLogger("aidmesh.store")


class Store:
    """Async facade: one writer task with group commit, reads in a small thread pool."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="aidmesh-writer")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="aidmesh-reader")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._queue: asyncio.Queue[tuple[Callable[[sqlite3.Connection], Any],
                                         asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Bumped after each commit that stored entries or forks; callbacks run then.
        self.version = 0
        self.on_change: list[Callable[[], None]] = []
        # Run after another process (the CLI) committed to the same file, on top of
        # on_change: anything cached from the database may be stale (tokens, peers).
        self.on_foreign: list[Callable[[], None]] = []
        self._data_version: int = ledger.conn.execute("PRAGMA data_version").fetchone()[0]
        self._watcher: asyncio.Task[None] | None = None
        # Id of the newest committed event (events table); listeners (SSE streams, webhook
        # deliveries) wait on `wait_events` and are woken after any commit that wrote one.
        self.events_seq = events_head(ledger.conn)
        self._events_seq_written = self.events_seq
        self._events_waker = asyncio.Event()
        self.closing = False
        ledger.deferred = True
        self._projector: asyncio.Task[None] | None = None
        self._project_wake = asyncio.Event()
        self._project_wake.set()  # a crash may have left entries unfolded
        self.projected = asyncio.Event()  # set whenever the projector has caught up

    @property
    def identity(self) -> Identity:
        return self.ledger.identity

    async def start(self) -> None:
        self._task = asyncio.create_task(self._write_loop(), name="aidmesh-writer")
        self._watcher = asyncio.create_task(self._watch_loop(), name="aidmesh-watcher")
        self._projector = asyncio.create_task(self._project_loop(), name="aidmesh-projector")

    async def wait_events(self, after: int, timeout: float | None = None) -> bool:
        """Wait until an event with id > ``after`` is committed: True, or False on timeout
        or when the store is closing (or `wake_listeners` was called)."""
        if self.events_seq > after:
            return True
        if self.closing:
            return False
        waker = self._events_waker
        try:
            await asyncio.wait_for(waker.wait(), timeout)
        except TimeoutError:
            return False
        return self.events_seq > after

    def wake_listeners(self) -> None:
        """Wake every `wait_events` caller now (a new event, or shutting down)."""
        waker, self._events_waker = self._events_waker, asyncio.Event()
        waker.set()

    async def close(self) -> None:
        self.closing = True
        self.wake_listeners()
        for task in (self._projector, self._watcher, self._task):
            if task:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        for conn in self._read_conns:
            conn.close()
        self.ledger.close()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the writer's transaction; returns once it is committed to disk."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((fn, future))
        return await future

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, fn)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.ledger.path)
            self._local.conn = conn
            self._read_conns.append(conn)
        return fn(conn)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_GROUP_COMMIT:
                batch.append(self._queue.get_nowait())
            try:
                results = await loop.run_in_executor(self._writer, self._run_batch, batch)
            except BaseException as exc:  # the commit itself failed: nothing is durable
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception)
                                          else RuntimeError("writer stopped"))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, fut), (ok, value) in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
            if self._events_seq_written > self.events_seq:
                self.events_seq = self._events_seq_written
                self.wake_listeners()
            if self.ledger.pending:
                self.ledger.pending = False
                self.projected.clear()
                self._project_wake.set()
            if self.ledger.changed:
                self.ledger.changed = False
                self.version += 1
                for hook in self.on_change:
                    hook()

    def _run_batch(self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Any]]
                   ) -> list[tuple[bool, Any]]:
        conn = self.ledger.conn
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, _ in batch:
                conn.execute("SAVEPOINT job")
                try:
                    results.append((True, fn(conn)))
                    conn.execute("RELEASE job")
                except Exception as exc:  # noqa: BLE001 - handed to the caller's future
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((False, exc))
            self.ledger.commit()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._events_seq_written = events_head(conn)
        return results

    # -- the projector ---------------------------------------------------------------------

    async def _project_loop(self) -> None:
        """Fold what ingest stored, batch by batch, until the cursor reaches the log."""
        while True:
            await self._project_wake.wait()
            self._project_wake.clear()
            try:
                while True:
                    await self._yield_to_writes()
                    if not await self.write(lambda c: self.ledger.project(
                            c, PROJECT_BATCH, PROJECT_BUDGET_S)):
                        break
            except Exception:  # noqa: BLE001 - retried at the next wake or poll
                log.exception("the projector could not fold a batch")
                await asyncio.sleep(1.0)
                self._project_wake.set()
                continue
            if not self.ledger.pending:
                self.projected.set()

    async def _yield_to_writes(self) -> None:
        """Let queued writes (ingest, local posts) go first, for up to PROJECT_YIELD_S: in
        a bulk pull entries become durable sooner, and the fold catches up in the gaps."""
        deadline = time.monotonic() + PROJECT_YIELD_S
        while not self._queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    async def caught_up(self) -> None:
        """Wait until every entry stored so far is folded (searchable)."""
        self._project_wake.set()
        while True:
            await self.projected.wait()
            if not self.ledger.pending and await self.read(_caught_up):
                return
            self.projected.clear()
            self._project_wake.set()

    # -- commits by other processes ------------------------------------------------------

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FOREIGN_POLL_S)
            try:
                seen = await loop.run_in_executor(self._writer, self._foreign_commit)
            except Exception:  # noqa: BLE001 - retried at the next poll
                log.exception("could not check for commits by other processes")
                continue
            if seen is not None:
                self._announce_foreign(seen)

    def _foreign_commit(self) -> int | None:
        """On the writer's thread (so never inside its transaction): the newest event id if
        another connection committed since the last look, else None. The writer's own
        commits do not change its connection's data_version."""
        conn = self.ledger.conn
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        previous, self._data_version = self._data_version, version
        if previous == version:
            return None
        return events_head(conn)

    def _announce_foreign(self, events_seq: int) -> None:
        """Treat another process's commit like our own: peers, listeners, caches."""
        if events_seq > self.events_seq:
            self.events_seq = events_seq
            self.wake_listeners()
        self.version += 1
        self._project_wake.set()
        for hook in [*self.on_change, *self.on_foreign]:
            hook()
