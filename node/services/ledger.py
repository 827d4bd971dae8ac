"""Opening the ledger with the state fold attached: the one way every interface does it."""

from __future__ import annotations

from pathlib import Path

from protocol import Identity

from ..state import projection
from ..store.ledger import Ledger


def open_ledger(path: Path, identity: Identity) -> Ledger:
    return Ledger(path, identity, projection)
