"""Sealed private details (spec §12): sealed to a counterpart's key from its `profile`."""

from __future__ import annotations

import sqlite3
from typing import Any

from protocol import ProtocolError, canonical, decode, parse_node_id
from protocol.errors import SealError
from protocol.seal import open_sealed, seal

from ..store.ledger import Ledger
from .errors import Conflict, Invalid


def seal_key(conn: sqlite3.Connection, author: str) -> bytes | None:
    """The sealing key from the latest `profile` of ``author`` this node holds."""
    row = conn.execute("SELECT payload FROM entries WHERE author = ? AND kind = 'profile' "
                       "AND payload IS NOT NULL ORDER BY seq DESC LIMIT 1",
                       (parse_node_id(author),)).fetchone()
    if row is None:
        return None
    key = decode(row["payload"]).get("seal_key")
    return key if isinstance(key, bytes) and len(key) == 32 else None


def seal_to(ledger: Ledger, conn: sqlite3.Connection, author: str,
             details: dict[str, str]) -> bytes:
    key = seal_key(conn, author)
    if key is None:
        raise Conflict("no-seal-key", f"the profile of {author} (with its sealing key) has "
                       "not arrived at this node yet, so private details cannot be sealed to "
                       "it; retry once its log has synced, or send without 'private'",
                       field="private")
    try:
        return seal(ledger.identity.seal_private(), key, canonical.encode(details))
    except SealError as exc:
        raise Invalid(exc.code, exc.detail, field="private") from None


def open_box(ledger: Ledger, box: bytes | None) -> dict[str, Any] | None:
    if box is None:
        return None
    try:
        value = decode(open_sealed(ledger.identity.seal_private(), box))
    except (SealError, ProtocolError):
        return None
    return value if isinstance(value, dict) else None
