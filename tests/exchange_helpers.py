"""The exchange fold's observable state, read from one node's SQLite file (for tests that
fold the same entries in different orders and compare)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from node.services.listings import status
from node.state.exchange import capacity, claim_status


def fold_state(conn: sqlite3.Connection, now: int = 0) -> dict[str, Any]:
    """Per listing (committed, fulfilled, status) and per claim (status, committed, what
    its draw commits or None): everything a node shows about exchanges."""
    listings = {r["id"]: (r["committed"], r["fulfilled"], status(r, now))
                for r in conn.execute("SELECT * FROM listings ORDER BY id")}
    claims = {}
    for row in conn.execute("SELECT * FROM claims ORDER BY id").fetchall():
        got = claim_status(conn, row)
        draw = got["draw"]["committed"] if got["draw"] is not None else None
        claims[row["id"]] = (got["status"], got["committed"], draw)
    return {"listings": listings, "claims": claims}


def over_committed(conn: sqlite3.Connection) -> list[str]:
    """Listings whose commitments exceed what they hold, or whose rows disagree with the
    sum of what commits them (accepts and draws in their owner's walk)."""
    bad = []
    for r in conn.execute("SELECT * FROM listings").fetchall():
        parts = sum((Decimal(x[0]) for x in conn.execute(
            "SELECT committed FROM responses WHERE target = ? AND author = ? AND kind IN "
            "('accept', 'for_need', 'from_offer') AND committed IS NOT NULL",
            (r["id"], r["author"]))), Decimal(0))
        if not (Decimal(0) <= Decimal(r["fulfilled"]) <= Decimal(r["committed"])
                <= capacity(r)) or parts != Decimal(r["committed"]):
            bad.append(r["id"])
    return bad
