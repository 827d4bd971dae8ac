"""The webhook delivery worker: each event of the journal POSTed, in order, to each URL.

One task per webhook, so a slow or dead receiver never holds up another one or the node.
The cursor (`webhooks.delivered`, the id of the last event handed over or skipped) is
saved after each delivery, so deliveries resume where they stopped after a restart:
delivery is at least once (a crash between the receiver's 2xx and the save repeats one
event), so receivers deduplicate on X-Aidmesh-Event-Id. Any 2xx is success; anything else
(3xx included: redirects are not followed), a timeout or a connection error is retried
with exponential backoff and jitter, the same event again, until it is delivered or the
webhook is deleted. The request format is in services/webhooks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .. import __version__
from ..outbound import Client, RefusedAddress
from ..services import events, webhooks
from ..services.values import rfc3339
from ..store.ledger import now_ms

log = logging.getLogger("aidmesh.webhooks")


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
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._client = Client(self.node.config, webhooks=True, timeout=self.TIMEOUT,
                              headers={"User-Agent": f"aidmesh/{__version__}"})
        await self.refresh()

    async def stop(self) -> None:
        async with self._lock:
            tasks = list(self.tasks.values())
            self.tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._client is not None:
                await self._client.close()
                self._client = None

    async def refresh(self) -> None:
        """Start a task for each new webhook; cancel the tasks of deleted ones."""
        rows = await self.node.store.read(webhooks.rows)
        async with self._lock:
            if self._client is None:
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
                    await self._save(lambda c, at=cursor: webhooks.delivered(c, hook.id, at,
                                                                            None))
                if not items:
                    await store.wait_events(cursor, timeout=self.IDLE_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a store hiccup must not end deliveries
                log.exception("webhook %s: delivery loop error", hook.id)
                await asyncio.sleep(self.backoff(1))

    async def _deliver(self, hook: Hook, item: dict[str, Any]) -> None:
        """POST one event until a receiver answers 2xx; save the cursor after it."""
        body, headers = _signed(hook.id, hook.secret, item)
        failures = 0
        while True:
            error = await self._post(hook.url, body, headers)
            if error is None:
                await self._save(lambda c: webhooks.delivered(c, hook.id, item["id"],
                                                              now_ms()))
                return
            failures += 1
            log.info(json.dumps({"event": "webhook-failed", "webhook": hook.id,
                                 "event_id": item["id"], "error": error,
                                 "failures": failures}))
            await self._save(lambda c, e=error: webhooks.failed(c, hook.id, e, now_ms()))
            await asyncio.sleep(self.backoff(failures))

    async def send_test(self, hook_id: str, url: str, secret: str) -> str | None:
        """One signed test event, outside the delivery cursor (the admin page's "send a
        test"): None when the receiver answered 2xx, else why not, in words."""
        item = {"id": 0, "type": "test", "created": rfc3339(now_ms()),
                "data": {"message": "a test delivery from the admin page"}}
        return await self._post(url, *_signed(hook_id, secret, item))

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        assert self._client is not None
        try:
            async with self._client.request("POST", url, data=body, headers=headers) as r:
                if 200 <= r.status < 300:
                    return None
                return f"receiver answered HTTP {r.status}"
        except TimeoutError:
            return "timed out"
        except RefusedAddress as exc:
            return str(exc)
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    async def _save(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        with contextlib.suppress(Exception):  # best effort: the next delivery saves again
            await self.node.store.write(fn)


def _signed(hook_id: str, secret: str, item: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An event's body and headers as every delivery sends them (docs: webhooks)."""
    body = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json", "X-Aidmesh-Event-Id": str(item["id"]),
                  "X-Aidmesh-Event-Type": item["type"], "X-Aidmesh-Webhook-Id": hook_id,
                  "X-Aidmesh-Signature": webhooks.sign(secret, body)}
