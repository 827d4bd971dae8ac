"""What the node holds: counts, logs, forks, verification, backup and export.

Shared by `GET /api/v1/node`, `/logs`, `/forks`, and `aidmesh status`, `log verify`,
`backup`, `export`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store import backlog
from ..store.files import private_file
from ..store.ledger import Ledger, heads, verify_log
from ..store.logs import entry_rows
from .errors import Conflict


def projector(conn: sqlite3.Connection) -> dict[str, float]:
    """The projector's lag: entries stored but not yet in listings, search and matches,
    and how long the oldest of them has waited (seconds)."""
    return backlog.lag(conn).as_json()


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT (SELECT count(*) FROM listings WHERE kind = 'offer') AS offers, "
        "(SELECT count(*) FROM listings WHERE kind = 'need') AS needs, "
        "(SELECT count(*) FROM heads) AS logs, "
        "(SELECT count(*) FROM entries) AS entries, "
        "(SELECT count(*) FROM forks) AS forks").fetchone())


def peer_count(conn: sqlite3.Connection, me: bytes) -> int:
    return conn.execute("SELECT count(*) FROM trust_edges WHERE author = ? AND active = 1",
                        (me,)).fetchone()[0]


def logs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [{"author": "am" + a.hex(), "seq": h.seq, "head": h.id.hex()}
            for a, h in sorted(heads(conn).items())]


def own_seq(ledger: Ledger, conn: sqlite3.Connection) -> int:
    own = heads(conn).get(ledger.identity.public)
    return own.seq if own else 0


def log_entries(conn: sqlite3.Connection, author: bytes, after: int, limit: int
                ) -> list[dict[str, Any]]:
    return [{"seq": r["seq"], "id": r["id"].hex(), "header": r["raw"].hex(),
             "payload": None if r["payload"] is None else r["payload"].hex()}
            for r in entry_rows(conn, author, after, limit)]


def forks(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [{"author": "am" + r["author"].hex(), "seq": r["seq"], "proof": r["proof"].hex(),
             "found": r["found"]}
            for r in conn.execute("SELECT author, seq, proof, found FROM forks")]


def verify_all(conn: sqlite3.Connection) -> tuple[int, list[str]]:
    """Re-verify every stored log from seq 1: (entries checked, problems)."""
    total, bad = 0, []
    for author in heads(conn):
        checked, problem = verify_log(conn, author)
        total += checked
        if problem:
            bad.append(problem)
    return total, bad


def backup(conn: sqlite3.Connection, target: Path) -> None:
    """Online backup (safe while the node runs) to a new file."""
    if target.exists():
        raise Conflict("exists", f"{target} exists; choose a new file name")
    private_file(target)  # a backup holds the same secrets as the database
    dest = sqlite3.connect(target)
    try:
        with dest:
            conn.backup(dest)
    finally:
        dest.close()


def export_entries(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    for row in conn.execute("SELECT author, seq, id, kind, ts, raw, payload FROM entries "
                            "ORDER BY author, seq"):
        yield {"author": "am" + row["author"].hex(), "seq": row["seq"], "id": row["id"].hex(),
               "kind": row["kind"], "ts": row["ts"], "header": row["raw"].hex(),
               "payload": None if row["payload"] is None else row["payload"].hex()}
