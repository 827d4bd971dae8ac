"""What the admin pages show about the node itself and its moderation, composed of the
other services in one read each: counts, disk use, forks (ours or a peer's), and the
moderator's decisions with the titles they concern."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from protocol.identity import node_id

from ..store.ledger import Ledger
from . import status
from .moderation import decisions
from .overview import group_names


def disk_use(home: Path) -> int:
    """Bytes used by the files of the data dir (database, WAL, key, config, backups)."""
    total = 0
    for root, _dirs, files in os.walk(home):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue  # a file removed while we walk (a WAL checkpoint)
    return total


def node(conn: sqlite3.Connection, ledger: Ledger) -> dict[str, Any]:
    """Counts, the projector's lag (entries stored but not yet in lists and matches),
    and each fork with whether it is in our own log."""
    counts = status.counts(conn)
    me, names = ledger.identity.node_id, group_names(conn)
    forks = [{**f, "ours": f["author"] == me, "name": names.get(f["author"])}
             for f in status.forks(conn)]
    return {"counts": counts, "forks": forks, "own_seq": status.own_seq(ledger, conn),
            "projector": status.projector(conn), "me": me}


def moderated(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The moderator's hide and erase decisions, newest first, each with the title of
    the post it concerns when this node still holds one, and its group's name."""
    names = group_names(conn)
    out = []
    for item in reversed(decisions(conn)):
        row = conn.execute("SELECT title, kind, author FROM listings WHERE id = ?",
                           (item["id"],)).fetchone()
        author = row["author"] if row else None
        if author is None:
            found = conn.execute("SELECT author FROM entries WHERE id = ?",
                                 (bytes.fromhex(item["id"]),)).fetchone()
            author = node_id(found["author"]) if found else None
        out.append({**item, "title": row["title"] if row else None,
                    "kind": row["kind"] if row else None, "author": author,
                    "name": names.get(author or "")})
    return out
