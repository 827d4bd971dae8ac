"""What the protocol accepts but a person rarely means, checked on a listing's way in.

A category or unit outside the vocabulary would match nothing, ever; an end time in the
past would make the listing expire at once and vanish from every list; a start after the
end would never be available. Each is a 422 that says what to do, and a unit is
normalised in place (`loaves` -> `loaf`). The API, the CLI and the web app all post
through services/listings.py, which calls `checked`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..store.ledger import Ledger
from . import vocabulary
from .errors import Invalid
from .values import rfc3339


def checked(conn: sqlite3.Connection, ledger: Ledger, kind: str, content: dict[str, Any],
            now: int) -> None:
    """Check (and normalise) a new listing's fields, or the changed fields of one."""
    vocab = vocabulary.declared(conn, ledger)
    if "category" in content:
        vocabulary.check_category(conn, ledger, content["category"], vocab)
    if isinstance(content.get("quantity"), dict):
        content["quantity"]["unit"] = vocabulary.unit_code(content["quantity"]["unit"], vocab)
    until = content.get("available_until")
    if isinstance(until, int) and until < now:
        raise Invalid("in-the-past", f"available_until ({rfc3339(until)}) is in the past: "
                      f"the {kind} would be expired at once and shown nowhere; give a later "
                      "time or leave it out", field="available_until")
    window(kind, content)


def window(kind: str, fields: dict[str, Any]) -> None:
    """The start must not be after the end (with the fields an update keeps, too)."""
    start, end = fields.get("available_from"), fields.get("available_until")
    if isinstance(start, int) and isinstance(end, int) and end < start:
        raise Invalid("payload-schema", f"available_from ({rfc3339(start)}) is after "
                      f"available_until ({rfc3339(end)}): the {kind} would never be "
                      "available; swap them or change one", field="available_until")
