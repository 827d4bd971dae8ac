"""Opening the ledger with the state fold attached: the one way every interface does it."""

from __future__ import annotations

from pathlib import Path

from protocol import Identity

from ..state import matching, projection
from ..store.ledger import Ledger


def open_ledger(path: Path, identity: Identity, max_matches: int | None = None) -> Ledger:
    """``max_matches`` (config max_matches_per_listing) is kept in the database, so the CLI
    and the node fold with the same K; changing it takes full effect after a reindex."""
    ledger = Ledger(path, identity, projection)
    if max_matches is not None and matching.limit(ledger.conn) != max_matches:
        ledger.transaction(lambda c: c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value", (matching.LIMIT_KEY, str(max_matches))))
    return ledger
