"""Trusted peers: added and removed as `trust` / `untrust` entries in this node's own log.

The peer list is folded from those entries (state/trust.py); sync progress is what the
gossip loop last saved (peer_state) or, on a running node, its live figures.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlsplit

from protocol import Entry, ProtocolError, parse_node_id

from ..store.ledger import Ledger
from . import replication
from .errors import Invalid, NotFound
from .urls import check_http_url
from .values import rfc3339

_NOT_BASE = ("/api/v1", "/federation/v1")


def check_url(url: Any) -> str:
    """A peer's base URL (the one `aidmesh run` prints, without /api/v1)."""
    hint = "give the peer's base URL, e.g. http://10.0.0.5:8080"
    check_http_url(url, hint)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise Invalid("invalid-field", f"url must not carry a query or a fragment; {hint}",
                      field="url")
    path = parts.path.rstrip("/")
    for suffix in _NOT_BASE:
        if path.endswith(suffix) or suffix + "/" in parts.path:
            base = url[: url.index(suffix)]
            raise Invalid("invalid-field", f"url must be the node's base URL, not its "
                          f"{suffix} endpoint: use {base!r}", field="url")
    return url


def parse_peer(ledger: Ledger, text: Any) -> bytes:
    try:
        peer = parse_node_id(text)
    except ProtocolError as exc:
        raise Invalid("invalid-field", f"{exc.detail}; a node id is 'am' and 64 hex digits, "
                      "as 'aidmesh status' prints it", field="id") from None
    if peer == ledger.identity.public:
        raise Invalid("invalid-field", "a node cannot peer with itself", field="id")
    return peer


def add(ledger: Ledger, conn: sqlite3.Connection, peer_id: Any, url: Any) -> Entry | None:
    """Trust a peer at a URL; None when it is already trusted at that URL."""
    peer = parse_peer(ledger, peer_id)
    url = check_url(url)
    row = conn.execute("SELECT url FROM trust_edges WHERE author = ? AND peer = ? AND "
                       "active = 1", (ledger.identity.public, peer)).fetchone()
    if row is not None and row["url"] == url:
        return None
    return ledger.append_local(conn, "trust", {"peer": peer, "url": url})


def remove(ledger: Ledger, conn: sqlite3.Connection, peer_id: str) -> Entry:
    try:
        peer = parse_node_id(peer_id)
    except ProtocolError as exc:
        raise NotFound("not-found", exc.detail, field="id") from None
    row = conn.execute("SELECT 1 FROM trust_edges WHERE author = ? AND peer = ? AND "
                       "active = 1", (ledger.identity.public, peer)).fetchone()
    if row is None:
        raise NotFound("not-found", f"am{peer.hex()} is not a peer of this node "
                       "('aidmesh peer list' shows them)")
    return ledger.append_local(conn, "untrust", {"peer": peer})


def rows(conn: sqlite3.Connection, me: bytes, hops: int) -> list[dict[str, Any]]:
    """Peers our log trusts, with the progress last saved by the gossip loop; behind is
    counted from the heads the peer last advertised against the heads we hold now."""
    out = []
    for r in conn.execute(
            "SELECT t.peer, t.url, p.last_success, p.last_error, p.last_error_at, "
            "p.bytes_in, p.bytes_out, p.entries_in, p.behind, p.advertised, p.rejected "
            "FROM trust_edges t LEFT JOIN peer_state p ON p.peer = t.peer "
            "WHERE t.author = ? AND t.active = 1 ORDER BY t.peer", (me,)):
        late = (replication.behind(conn, r["advertised"], me, hops)
                if r["advertised"] is not None else r["behind"])
        out.append({
            "id": "am" + r["peer"].hex(), "url": r["url"],
            "last_success": r["last_success"], "last_error": r["last_error"],
            "last_error_at": r["last_error_at"], "entries_behind": late,
            "entries_in": r["entries_in"] or 0, "bytes_in": r["bytes_in"] or 0,
            "bytes_out": r["bytes_out"] or 0, "rejected": r["rejected"] or 0,
        })
    return out


def error_is_current(peer: dict[str, Any]) -> bool:
    """Whether the last error came after the last success (ms times, before `as_json`)."""
    return bool(peer["last_error"]) and (peer["last_success"] is None or (
        peer["last_error_at"] or 0) > peer["last_success"])


def as_json(peer: dict[str, Any], live: dict[str, Any] | None = None) -> dict[str, Any]:
    """A peer as the API shows it; ``live`` (the running gossip loop's figures) wins."""
    out = {**peer, **(live or {})}
    for key in ("last_success", "last_error_at"):
        out[key] = rfc3339(out[key])
    return out
