"""Entry ids as people type them: the full 64 hex digits or a unique prefix (like git)."""

from __future__ import annotations

import re
import sqlite3

from .errors import Invalid, NotFound

MIN_PREFIX = 8
_HEX = re.compile(r"^[0-9a-f]+$")


def resolve(conn: sqlite3.Connection, text: str, kinds: tuple[str, ...] = ()) -> str:
    """The one stored entry id starting with ``text`` (of one of ``kinds``, if given)."""
    prefix = text.strip().lower()
    if not _HEX.match(prefix) or not MIN_PREFIX <= len(prefix) <= 64:
        raise Invalid("invalid-id", f"{text[:80]!r} is not an entry id: give at least "
                      f"{MIN_PREFIX} of its hex digits, as the list commands print them",
                      field="id")
    low = bytes.fromhex(prefix + "0" * (64 - len(prefix)))
    high = bytes.fromhex(prefix + "f" * (64 - len(prefix)))
    where, params = "id BETWEEN ? AND ?", [low, high]
    if kinds:
        where += f" AND kind IN ({', '.join('?' * len(kinds))})"
        params += list(kinds)
    rows = conn.execute(f"SELECT id, kind FROM entries WHERE {where} LIMIT 6",
                        params).fetchall()
    what = " or ".join(kinds) or "entry"
    if not rows:
        raise NotFound("not-found", f"no {what} with an id starting {prefix} on this node")
    if len(rows) > 1:
        shown = ", ".join(f"{r['id'].hex()[:16]} ({r['kind']})" for r in rows[:5])
        raise Invalid("ambiguous-id", f"{prefix} matches several entries: {shown}; give more "
                      "digits", field="id")
    return rows[0]["id"].hex()
