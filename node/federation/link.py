"""One peer as the gossip loop sees it: backoff, progress, and the last error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field

import aiohttp

from protocol.sync import Head

from ..services.replication import Peer

BACKOFF_START_S = 2.0
BACKOFF_CAP_S = 300.0


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
    advertised: bytes | None = None  # the peer's last state message
    saved_advertised: bytes | None = None  # ... as last saved to peer_state
    saved_at: float = 0.0  # monotonic time of the last save to peer_state
    heads: dict[bytes, Head] = field(default_factory=dict)  # decoded from `advertised`
    rejected: int = 0  # frames, proofs and payloads refused: sent unasked or invalid
    payloads_in: int = 0  # missing payloads this peer supplied
    asked: dict[bytes, float] = field(default_factory=dict)  # payload id -> when asked
    dropped: set[bytes] = field(default_factory=set)  # authors refused in this round

    def delay(self, interval: float) -> float:
        if self.failures:
            base = min(BACKOFF_CAP_S, BACKOFF_START_S * 2 ** (self.failures - 1))
        else:
            base = interval
        return base * random.uniform(0.8, 1.2)

    async def read(self, resp: aiohttp.ClientResponse, cap: int, what: str) -> bytes:
        """A response body from this peer, refused as soon as it passes ``cap`` bytes.

        Never holds more than cap + one chunk in memory; the connection is closed on
        refusal. Every byte read counts in bytes_in.
        """
        if resp.content_length is not None and resp.content_length > cap:
            resp.close()
            raise SyncFailed(f"{what}: the peer announced {resp.content_length} bytes; at "
                             f"most {cap} are read")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(64 * 1024):
            self.bytes_in += len(chunk)
            body += chunk
            if len(body) > cap:
                resp.close()
                raise SyncFailed(f"{what}: the peer sent more than {cap} bytes; refused")
        return bytes(body)

    def reject(self, count: int, reason: str) -> None:
        """Count frames, proofs or payloads refused from this peer, with the first reason."""
        self.rejected += count
        self.last_error = f"rejected {count}: {reason}"[:500]
        self.last_error_at = int(time.time() * 1000)

    def as_json(self) -> dict[str, object]:
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
            "rejected": self.rejected,
        }


def describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:500]


def http_error(what: str, status: int, body: bytes) -> str:
    """A peer's error answer in words: its problem detail, else the start of its text."""
    text = body[:2000].decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError, AttributeError):
        text = json.loads(text).get("detail") or text
    text = " ".join(text.split())
    if len(text) > 300:
        text = text[:300].rsplit(" ", 1)[0] + " ..."
    return f"{what}: the peer answered HTTP {status}" + (f": {text}" if text else "")
