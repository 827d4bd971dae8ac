"""Hourly sweep that erases long-expired payloads; headers stay, logs still verify."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ..services.moderation import erase_expired
from ..store.ledger import now_ms

log = logging.getLogger("aidmesh.retention")
RETENTION_SWEEP_S = 3600.0


class Retention:
    def __init__(self, node: Any) -> None:
        self.node = node
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="aidmesh-retention")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> int:
        days = self.node.config.retention_days
        count = await self.node.store.write(lambda c: erase_expired(c, days, now_ms()))
        if count:
            log.info(json.dumps({"event": "retention", "erased": count}))
        return count

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - a failed sweep is retried next hour
                log.exception("retention sweep failed")
            await asyncio.sleep(RETENTION_SWEEP_S)
