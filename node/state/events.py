"""The event journal: what happened, in commit order, for SSE replay and webhooks.

Events are written in the same transaction as the state change they describe, so a
client resuming with Last-Event-ID never misses one and never sees one that rolled back.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

EVENT_TYPES = ("listing", "match", "claim")


def emit(conn: sqlite3.Connection, type_: str, data: dict[str, Any]) -> None:
    conn.execute("INSERT INTO events (type, data, created) VALUES (?, ?, ?)",
                 (type_, json.dumps(data, separators=(",", ":")), int(time.time() * 1000)))


def emit_many(conn: sqlite3.Connection, type_: str, items: list[dict[str, Any]]) -> None:
    """`emit` for a batch (the projector's new listings): one statement, same order."""
    now = int(time.time() * 1000)
    conn.executemany("INSERT INTO events (type, data, created) VALUES (?, ?, ?)",
                     [(type_, json.dumps(d, separators=(",", ":")), now) for d in items])
