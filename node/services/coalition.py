"""The coalition as an admin sees it: which groups' logs this node replicates, how far
each is in trust hops, through which direct peer it was reached, and who is blocked.

The same walk as state/trust.py `scope` (breadth-first over active trust edges, never
through a blocked author), keeping the first peer on the way, so the page explains why a
group is, or is not, on this node.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from protocol.identity import node_id

from .moderation import blocks
from .overview import group_names


def _edges(conn: sqlite3.Connection) -> dict[bytes, list[bytes]]:
    edges: dict[bytes, list[bytes]] = {}
    for r in conn.execute("SELECT author, peer FROM trust_edges WHERE active = 1 "
                          "ORDER BY author, peer"):
        edges.setdefault(r["author"], []).append(r["peer"])
    return edges


def members(conn: sqlite3.Connection, me: bytes, hops: int) -> dict[str, Any]:
    """{authors: [{id, name, hops, via, via_name, entries}], blocked: [{author, name,
    reason, created}], hops}; our own node is left out."""
    blocked_rows = blocks(conn)
    blocked = {bytes.fromhex(b["author"][2:]) for b in blocked_rows}
    edges, names = _edges(conn), group_names(conn)
    held = {r["author"]: r["seq"] for r in conn.execute("SELECT author, seq FROM heads")}
    via: dict[bytes, tuple[int, bytes]] = {}
    frontier = [me]
    for distance in range(1, hops + 1):
        nxt = []
        for author in frontier:
            for peer in edges.get(author, ()):
                if peer == me or peer in via or peer in blocked:
                    continue
                via[peer] = (distance, peer if author == me else via[author][1])
                nxt.append(peer)
        frontier = nxt
    authors = []
    for author, (distance, first) in via.items():
        text, first_text = node_id(author), node_id(first)
        authors.append({"id": text, "name": names.get(text), "hops": distance,
                        "via": first_text, "via_name": names.get(first_text),
                        "entries": held.get(author, 0)})
    authors.sort(key=lambda a: (a["hops"], (a["name"] or "").casefold(), a["id"]))
    for b in blocked_rows:
        b["name"] = names.get(b["author"])
    return {"authors": authors, "blocked": blocked_rows, "hops": hops}
