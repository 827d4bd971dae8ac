"""Nonces of accepted federation requests, kept in the database so they survive a restart.

A signed request is valid for MAX_SKEW_S (300 s) either side of its `created`; a nonce
held only in memory would let a request captured before a restart be replayed after it.
Two ways were weighed:

- Refuse requests whose `created` is before the node started. No storage, but it is
  sound only while the caller's clock is not ahead of ours (a request signed before the
  restart by a peer 60 s ahead carries a `created` after it), and it refuses honest
  requests signed in the second of the start and, for as long as they lag, those of
  peers whose clocks are behind: every restart would cost peers a failed round.
- Keep the nonces (this module). Sound whatever the clocks, no refusal of honest
  requests; the price is one small write per accepted request, group-committed by the
  store's writer with everything else.

The table (migration 7 in db.py) holds no truth: rows expire after their TTL.
"""

from __future__ import annotations

import sqlite3


def remember(conn: sqlite3.Connection, caller: bytes, nonce: str, now: float,
             ttl: float) -> bool:
    """Record ``nonce`` from ``caller``: True if new, False if it was seen in the last
    ``ttl`` seconds (a replay). Forgets expired nonces on the way."""
    conn.execute("DELETE FROM federation_nonces WHERE expires < ?", (int(now),))
    cur = conn.execute("INSERT OR IGNORE INTO federation_nonces (caller, nonce, expires) "
                       "VALUES (?, ?, ?)", (caller, nonce, int(now + ttl) + 1))
    return cur.rowcount == 1

