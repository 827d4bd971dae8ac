"""Replication scope: authors within `hops` trust edges of this node, minus blocked ones.

The graph is folded from `trust`/`untrust` entries of every stored log, so scope grows
as logs arrive: a node first pulls its peers' logs, learns whom they trust, then pulls
those (up to `hops`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    id: bytes
    url: str


def direct_peers(conn: sqlite3.Connection, me: bytes) -> list[Peer]:
    """Peers this node's own log currently trusts: the only nodes it talks to."""
    return [Peer(r["peer"], r["url"]) for r in conn.execute(
        "SELECT peer, url FROM trust_edges WHERE author = ? AND active = 1 ORDER BY peer",
        (me,))]


def blocked_authors(conn: sqlite3.Connection) -> frozenset[bytes]:
    return frozenset(bytes.fromhex(r[0][2:]) for r in conn.execute("SELECT author FROM blocks"))


def scope(conn: sqlite3.Connection, me: bytes, hops: int) -> set[bytes]:
    """Authors to replicate and serve: breadth-first over active trust edges, never
    through or to an author this node blocks."""
    blocked = blocked_authors(conn)
    edges: dict[bytes, list[bytes]] = {}
    for r in conn.execute("SELECT author, peer FROM trust_edges WHERE active = 1"):
        edges.setdefault(r["author"], []).append(r["peer"])
    seen = {me}
    frontier = [me]
    for _ in range(hops):
        nxt = []
        for author in frontier:
            for peer in edges.get(author, ()):
                if peer not in seen and peer not in blocked:
                    seen.add(peer)
                    nxt.append(peer)
        frontier = nxt
    return seen
