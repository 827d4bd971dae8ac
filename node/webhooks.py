"""Outbound webhooks: each event of the journal POSTed, in order, to the URLs an admin set.

One task per webhook, so a slow or dead receiver never holds up another one or the node.
The cursor (`webhooks.delivered`, the id of the last event handed over or skipped) is
saved after each delivery, so deliveries resume where they stopped after a restart:
delivery is at least once (a crash between the receiver's 2xx and the save repeats one
event), so receivers deduplicate on X-Aidmesh-Event-Id.

Request: ``POST <url>`` with the JSON body ``{id, type, created, data}`` (the same object
an SSE message carries) and the headers ``X-Aidmesh-Event-Id``, ``X-Aidmesh-Event-Type``,
``X-Aidmesh-Webhook-Id`` and ``X-Aidmesh-Signature: sha256=<hex HMAC-SHA256(secret,
body bytes)>``. Any 2xx is success; anything else (3xx included: redirects are not
followed), a timeout or a connection error is retried with exponential backoff and
jitter, the same event again, until it is delivered or the webhook is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from . import __version__, events
from .store import now_ms

log = logging.getLogger("aidmesh.webhooks")

MAX_URL_LENGTH = 2048
MAX_WEBHOOKS = 100


class WebhookError(ValueError):
    def __init__(self, detail: str, field: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise WebhookError("url must be an http:// or https:// URL", "url")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookError(f"url is longer than {MAX_URL_LENGTH} characters", "url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise WebhookError("url is not a valid URL", "url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("url must be an http:// or https:// URL with a host", "url")
    if parts.username or parts.password:
        raise WebhookError("url must not carry credentials; verify the signature instead",
                           "url")
    return url


def check_types(types: Any) -> list[str] | None:
    if types is None:
        return None
    if (not isinstance(types, list) or not types
            or not all(isinstance(t, str) and t in events.EVENT_TYPES for t in types)):
        raise WebhookError(f"types is a non-empty list of {', '.join(events.EVENT_TYPES)}",
                           "types")
    return sorted(set(types))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- the webhooks table ---------------------------------------------------------------------


def as_json(row: sqlite3.Row) -> dict[str, Any]:
    from .listing import rfc3339

    return {"id": row["id"], "url": row["url"],
            "types": row["types"].split(",") if row["types"] else None,
            "created": rfc3339(row["created"]), "delivered": row["delivered"],
            "failures": row["failures"], "last_error": row["last_error"],
            "last_error_at": rfc3339(row["last_error_at"]),
            "last_success": rfc3339(row["last_success"])}


def create(conn: sqlite3.Connection, url: str, types: list[str] | None
           ) -> tuple[dict[str, Any], str]:
    """A new webhook, delivering events committed from now on; returns (row, secret)."""
    count = conn.execute("SELECT count(*) FROM webhooks").fetchone()[0]
    if count >= MAX_WEBHOOKS:
        raise WebhookError(f"this node already has {MAX_WEBHOOKS} webhooks", "url")
    hook_id, secret = secrets.token_hex(8), secrets.token_hex(32)
    conn.execute("INSERT INTO webhooks (id, url, secret, created, delivered, types) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 (hook_id, url, secret, now_ms(), events.head(conn),
                  ",".join(types) if types else None))
    row = conn.execute("SELECT * FROM webhooks WHERE id = ?", (hook_id,)).fetchone()
    return as_json(row), secret


def list_all(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [as_json(r) for r in conn.execute("SELECT * FROM webhooks ORDER BY created, id")]


def delete(conn: sqlite3.Connection, hook_id: str) -> bool:
    return conn.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,)).rowcount > 0


# -- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    id: str
    url: str
    secret: str
    types: frozenset[str] | None
    delivered: int


class Webhooks:
    """The delivery worker: `start` on app startup, `refresh` after a change, `stop`."""

    # Retry delays: BACKOFF_START_S doubling per failure up to BACKOFF_CAP_S, each scaled by
    # a random factor in [0.5, 1) so receivers coming back are not hit all at once.
    BACKOFF_START_S = 1.0
    BACKOFF_CAP_S = 300.0
    TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5, sock_read=10)
    BATCH = 100
    # Wake at least this often even without a commit notification (events another process,
    # e.g. the CLI, wrote to the same file).
    IDLE_S = 30.0

    def __init__(self, node: Any) -> None:
        self.node = node
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=self.TIMEOUT, headers={"User-Agent": f"aidmesh/{__version__}"})
        await self.refresh()

    async def stop(self) -> None:
        async with self._lock:
            tasks = list(self.tasks.values())
            self.tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def refresh(self) -> None:
        """Start a task for each new webhook; cancel the tasks of deleted ones."""
        rows = await self.node.store.read(
            lambda c: c.execute("SELECT * FROM webhooks").fetchall())
        async with self._lock:
            if self._session is None:
                return
            current = {r["id"]: r for r in rows}
            gone = [self.tasks.pop(i) for i in list(self.tasks) if i not in current]
            for task in gone:
                task.cancel()
            await asyncio.gather(*gone, return_exceptions=True)
            for hook_id, r in current.items():
                if hook_id not in self.tasks:
                    hook = Hook(r["id"], r["url"], r["secret"],
                                frozenset(r["types"].split(",")) if r["types"] else None,
                                r["delivered"])
                    self.tasks[hook_id] = asyncio.create_task(
                        self._run(hook), name=f"aidmesh-webhook-{hook_id}")

    def backoff(self, failures: int) -> float:
        delay = min(self.BACKOFF_CAP_S, self.BACKOFF_START_S * 2 ** min(failures - 1, 30))
        return delay * random.uniform(0.5, 1.0)

    async def _run(self, hook: Hook) -> None:
        store = self.node.store
        cursor = hook.delivered
        while True:
            try:
                scanned, items = await store.read(
                    lambda c, after=cursor: events.page(c, after, self.BATCH, now_ms(),
                                                        hook.types))
                for item in items:
                    await self._deliver(hook, item)
                    cursor = item["id"]
                if scanned > cursor:  # only events this webhook does not want were left
                    cursor = scanned
                    await self._save(hook.id, "UPDATE webhooks SET delivered = max(delivered, "
                                     "?) WHERE id = ?", (cursor, hook.id))
                if not items:
                    await store.wait_events(cursor, timeout=self.IDLE_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a store hiccup must not end deliveries
                log.exception("webhook %s: delivery loop error", hook.id)
                await asyncio.sleep(self.backoff(1))

    async def _deliver(self, hook: Hook, item: dict[str, Any]) -> None:
        """POST one event until a receiver answers 2xx; save the cursor after it."""
        body = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json",
                   "X-Aidmesh-Event-Id": str(item["id"]),
                   "X-Aidmesh-Event-Type": item["type"],
                   "X-Aidmesh-Webhook-Id": hook.id,
                   "X-Aidmesh-Signature": sign(hook.secret, body)}
        failures = 0
        while True:
            error = await self._post(hook.url, body, headers)
            if error is None:
                await self._save(hook.id, "UPDATE webhooks SET delivered = max(delivered, ?), "
                                 "failures = 0, last_success = ? WHERE id = ?",
                                 (item["id"], now_ms(), hook.id))
                return
            failures += 1
            log.info(json.dumps({"event": "webhook-failed", "webhook": hook.id,
                                 "event_id": item["id"], "error": error,
                                 "failures": failures}))
            await self._save(hook.id, "UPDATE webhooks SET failures = failures + 1, "
                             "last_error = ?, last_error_at = ? WHERE id = ?",
                             (error, now_ms(), hook.id))
            await asyncio.sleep(self.backoff(failures))

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          allow_redirects=False) as r:
                if 200 <= r.status < 300:
                    return None
                return f"receiver answered HTTP {r.status}"
        except TimeoutError:
            return "timed out"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    async def _save(self, hook_id: str, sql: str, params: tuple[Any, ...]) -> None:
        with contextlib.suppress(Exception):  # best effort: the next delivery saves again
            await self.node.store.write(lambda c: c.execute(sql, params))
