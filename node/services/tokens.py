"""Client API tokens: random, shown once, stored hashed, compared in constant time.

A token reads ``amt_<id>_<secret>``: the id finds the row without a scan, the secret is
256 random bits so a plain SHA-256 is an adequate hash (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from .errors import Invalid, NotFound

ROLES = ("reader", "coordinator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    token_id: str | None
    name: str
    role: str

    def allows(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


ANONYMOUS_READER = Principal(None, "anonymous", "reader")


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_token(conn: sqlite3.Connection, role: str, name: str, now: int) -> tuple[str, str]:
    """Store a new token; returns (token id, full token). The full token is never stored."""
    if role not in ROLES:
        raise Invalid("invalid-field", f"role must be one of {', '.join(ROLES)}",
                      field="role")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise Invalid("invalid-field", "name is 1 to 100 characters", field="name")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    conn.execute("INSERT INTO tokens (id, name, role, hash, created) VALUES (?, ?, ?, ?, ?)",
                 (token_id, name, role, _hash(secret), now))
    return token_id, f"amt_{token_id}_{secret}"


def check_token(conn: sqlite3.Connection, token: str) -> Principal | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "amt" or len(parts[1]) != 12:
        return None
    row = conn.execute("SELECT id, name, role, hash, revoked FROM tokens WHERE id = ?",
                       (parts[1],)).fetchone()
    # Compare even when the row is missing so timing does not reveal which ids exist.
    expected = row["hash"] if row else b"\0" * 32
    ok = hmac.compare_digest(expected, _hash(parts[2]))
    if not row or not ok or row["revoked"] is not None:
        return None
    return Principal(row["id"], row["name"], row["role"])


def list_tokens(conn: sqlite3.Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(
        "SELECT id, name, role, created, revoked FROM tokens ORDER BY created, id")]


def revoke_token(conn: sqlite3.Connection, token_id: str, now: int) -> None:
    cur = conn.execute("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                       (now, token_id))
    if cur.rowcount == 0:
        raise NotFound("not-found", f"no active token with id {token_id[:80]!r}; "
                       "'aidmesh token list' shows them")
