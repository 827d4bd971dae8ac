"""Sealed private details (spec §12): sealed to a counterpart's key from its `profile`.

A box names its sender and recipient keys but not the entry it belongs to (the AAD is
constant), so anyone can copy a box into an entry of their own. It is shown only when
its sender key is the seal key of the latest profile of the entry's author, no other
author's latest profile claims that key, and its recipient is the other party: a copied
box shows nothing instead of passing for the copier's details.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from protocol import ProtocolError, canonical, decode, parse_node_id
from protocol.errors import SealError
from protocol.seal import open_sealed, parties, seal

from ..store.ledger import Ledger
from .errors import Conflict, Invalid


def _key_of(payload: bytes | None) -> bytes | None:
    if payload is None:
        return None
    try:
        profile = decode(payload)
    except ProtocolError:
        return None
    key = profile.get("seal_key") if isinstance(profile, dict) else None
    return key if isinstance(key, bytes) and len(key) == 32 else None


def seal_key(conn: sqlite3.Connection, author: str) -> bytes | None:
    """The sealing key from the latest `profile` of ``author`` this node holds."""
    row = conn.execute("SELECT payload FROM entries WHERE author = ? AND kind = 'profile' "
                       "AND payload IS NOT NULL ORDER BY seq DESC LIMIT 1",
                       (parse_node_id(author),)).fetchone()
    return _key_of(row["payload"]) if row is not None else None


@dataclass
class Keyring:
    """Every author's latest seal key, read once per request that opens boxes."""

    conn: sqlite3.Connection
    _by_author: dict[bytes, bytes] | None = None

    def latest(self) -> dict[bytes, bytes]:
        if self._by_author is None:
            self._by_author = {}
            for row in self.conn.execute(
                    "SELECT e.author, e.payload FROM entries e JOIN (SELECT author, "
                    "max(seq) AS seq FROM entries WHERE kind = 'profile' AND payload IS NOT "
                    "NULL GROUP BY author) p ON e.author = p.author AND e.seq = p.seq"):
                key = _key_of(row["payload"])
                if key is not None:
                    self._by_author[row["author"]] = key
        return self._by_author

    def owners(self, key: bytes) -> set[bytes]:
        return {a for a, k in self.latest().items() if k == key}


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


def open_box(ledger: Ledger, keys: Keyring, box: bytes | None, sender: str,
             recipient: str) -> dict[str, Any] | None:
    """The details in a box that ``sender`` (the author of the entry carrying it) sealed
    to ``recipient``, if this node is one of them; None for anything else."""
    me = ledger.identity
    if box is None or me.node_id not in (sender, recipient):
        return None
    try:
        sent_by, sent_to = parties(box)
        by, to = parse_node_id(sender), parse_node_id(recipient)
        latest = {**keys.latest(), me.public: me.seal_public()}
        if (sent_by != latest.get(by) or sent_to != latest.get(to)
                or keys.owners(sent_by) - {by}):
            return None
        value = decode(open_sealed(me.seal_private(), box))
    except (SealError, ProtocolError):
        return None
    return value if isinstance(value, dict) else None
