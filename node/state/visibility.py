"""What this node shows: one rule for every read and write path.

A listing is visible unless a moderator of this node hid it or its author is blocked
here. A claim is visible unless a moderator hid it, either party is blocked, or the
listing it is about is not visible. Lists, reads by id, claims and their answers,
matches and the event stream all ask here, so a hidden or blocked listing cannot be
read by id or claimed while the list leaves it out. Erased entries have no rows at all.
Federation serving follows trust.scope, which leaves blocked authors out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

BLOCKED = "(SELECT author FROM blocks)"
HIDDEN = "(SELECT id FROM moderation WHERE action = 'hide')"


def listing_visible(alias: str) -> str:
    """SQL predicate on a `listings` row named ``alias``."""
    return f"({alias}.hidden = 0 AND {alias}.author NOT IN {BLOCKED})"


def claim_visible(alias: str) -> str:
    """SQL predicate on a `claims` row named ``alias`` (an unknown target counts as seen:
    nothing about it is shown)."""
    return (f"({alias}.claimant NOT IN {BLOCKED} AND {alias}.owner NOT IN {BLOCKED} "
            f"AND {alias}.id NOT IN {HIDDEN} AND NOT EXISTS (SELECT 1 FROM listings vt "
            f"WHERE vt.id = {alias}.target AND NOT {listing_visible('vt')}))")


def listing(conn: sqlite3.Connection, listing_id: str, kind: str | None = None
            ) -> sqlite3.Row | None:
    """The listing row if this node shows it (of ``kind``, when given), else None."""
    row = conn.execute(f"SELECT l.* FROM listings l WHERE l.id = ? AND "
                       f"{listing_visible('l')}", (listing_id,)).fetchone()
    if row is None or (kind is not None and row["kind"] != kind):
        return None
    return row


def claim(conn: sqlite3.Connection, claim_id: str) -> sqlite3.Row | None:
    return conn.execute(f"SELECT c.* FROM claims c WHERE c.id = ? AND {claim_visible('c')}",
                        (claim_id,)).fetchone()


@dataclass(frozen=True)
class View:
    """The rule at one moment, for filtering many items in Python (an event page)."""

    blocked: frozenset[str]
    hidden: frozenset[str]
    authors: dict[str, str]  # listing id -> author, for the listings asked about

    def listing(self, listing_id: str, author: str | None = None) -> bool:
        author = self.authors.get(listing_id, author)
        return listing_id not in self.hidden and author not in self.blocked

    def claim(self, claim_id: str, target: str, *parties: str) -> bool:
        return (claim_id not in self.hidden and self.listing(target)
                and not any(p in self.blocked for p in parties))


def view(conn: sqlite3.Connection, listing_ids: Iterable[str]) -> View:
    ids = tuple(set(listing_ids))
    authors: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        authors.update((r[0], r[1]) for r in conn.execute(
            f"SELECT id, author FROM listings WHERE id IN ({','.join('?' * len(chunk))})",
            chunk))
    blocked = frozenset(r[0] for r in conn.execute("SELECT author FROM blocks"))
    hidden = frozenset(r[0] for r in conn.execute(
        "SELECT id FROM moderation WHERE action = 'hide'"))
    return View(blocked, hidden, authors)
