"""People who sign in to the web app: invites, passwords, sessions, sign-in limits, and
the local audit trail of which person made each entry of this node's log.

Entries stay signed by the node; people are a local matter, never replicated. Secrets
(invite links, session cookies) are random and only their SHA-256 is stored; passwords
are hashed with argon2id. Reads (`sign_in`, `session`) never write, so they run on the
store's reader threads; everything else runs inside the caller's write transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..config import Config
from ..store.ledger import Ledger, now_ms
from .errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from .names import clean_name, language_tag, name_key
from .signin_limits import SignInLimiter as SignInLimiter  # part of this API
from .tokens import ROLES

T = TypeVar("T")
_RANK = {role: i for i, role in enumerate(ROLES)}
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SETUP_TTL_MS = 24 * HOUR_MS
SESSION_IDLE_MS = 30 * DAY_MS
SESSION_MAX_MS = 90 * DAY_MS
NAME_MAX, PASSWORD_MIN, PASSWORD_MAX = 80, 10, 200
# A hash of a random password, with PasswordHasher()'s parameters: verified when the name
# is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$K00ylfQ/YbJPnDU5K4sQNQ$"
               "D5HC+7HXOZpF6xWic6+T1OnTUdOn3iiqoH8VAK+A8P4")
INVITE_UNKNOWN = ("This invite link does not work: it was already used, it expired, or it "
                  "was copied incompletely. Ask an admin of the group for a new one.")
WRONG = ("The name or password is wrong. Check them and try again; an admin can send you "
         "a new invite link.")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    role: str
    language: str | None

    def allows(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


@dataclass(frozen=True)
class Session:
    id: str
    person: Person
    csrf: str
    created: int
    last_seen: int


@dataclass(frozen=True)
class Invite:
    role: str
    expires: int
    first_admin: bool


def _sha(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _person(row: sqlite3.Row) -> Person:
    return Person(row["id"], row["name"], row["role"], row["language"])


def _active(conn: sqlite3.Connection, person_id: Any) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM people WHERE id = ? AND revoked IS NULL",
                       (str(person_id)[:40],)).fetchone()
    if row is None:
        raise NotFound("person-unknown", f"no active person with id {str(person_id)[:40]!r}; "
                       "'aidmesh person list' shows them")
    return row


def _anyone(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM people LIMIT 1").fetchone() is not None


def _check_role(role: Any) -> str:
    if role not in ROLES:
        raise Invalid("invalid-field", f"role must be one of {', '.join(ROLES)}", field="role")
    return role


def _admin_only(conn: sqlite3.Connection, actor: Person | None, what: str) -> None:
    """None is the operator at the CLI, who may do anything. The role is read again: the
    actor may have been demoted or removed since their page was loaded."""
    if actor is not None and not conn.execute(
            "SELECT 1 FROM people WHERE id = ? AND role = 'admin' AND revoked IS NULL",
            (actor.id,)).fetchone():
        raise Forbidden("admin-only", f"only an admin may {what}; ask one of the group's "
                        "admins")


# -- invites ------------------------------------------------------------------------------


def _new_invite(conn: sqlite3.Connection, role: str, by: str | None, now: int, ttl_ms: int,
                first: bool) -> str:
    token = secrets.token_urlsafe(24)  # 192 bits
    conn.execute("DELETE FROM invites WHERE expires < ?", (now - 30 * DAY_MS,))
    conn.execute("INSERT INTO invites (hash, role, first, created_by, created, expires) "
                 "VALUES (?, ?, ?, ?, ?, ?)", (_sha(token), role, int(first), by, now,
                                               now + ttl_ms))
    return token


def setup_token(conn: sqlite3.Connection, now: int) -> str | None:
    """A one-time link token to create the first admin, while nobody exists; else None."""
    if _anyone(conn):
        return None
    return _new_invite(conn, "admin", None, now, SETUP_TTL_MS, True)


def setup_link(conn: sqlite3.Connection, config: Config, now: int) -> str | None:
    """The whole setup link (see `setup_token`), or None once someone exists."""
    token = setup_token(conn, now)
    return join_link(config, token) if token else None


def create_invite(conn: sqlite3.Connection, role: str, by: Person | None, now: int,
                  ttl_days: int = 7) -> str:
    """A one-time invite token for one person of ``role``; ``by`` None is the CLI."""
    _admin_only(conn, by, "invite people")
    _check_role(role)
    if isinstance(ttl_days, bool) or not isinstance(ttl_days, int) or not 1 <= ttl_days <= 30:
        raise Invalid("invalid-field", "an invite is valid for 1 to 30 days", field="ttl_days")
    return _new_invite(conn, role, by.id if by else None, now, ttl_days * DAY_MS, False)


def _open_invite(conn: sqlite3.Connection, token: Any, now: int) -> sqlite3.Row:
    row = None
    if isinstance(token, str) and 0 < len(token) <= 100:
        row = conn.execute("SELECT * FROM invites WHERE hash = ? AND used IS NULL AND "
                           "expires > ?", (_sha(token), now)).fetchone()
    if row is None or (row["first"] and _anyone(conn)):
        raise NotFound("invite-unknown", INVITE_UNKNOWN)
    return row


def invite(conn: sqlite3.Connection, token: str, now: int) -> Invite:
    """What an unused, unexpired invite link offers (read-only)."""
    row = _open_invite(conn, token, now)
    return Invite(row["role"], row["expires"], bool(row["first"]))


def hash_password(password: Any) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise Invalid("invalid-field", f"The password needs at least {PASSWORD_MIN} "
                      f"characters (at most {PASSWORD_MAX}); a few words are easy to "
                      "remember", field="password")
    return PasswordHasher().hash(password)


def accept_invite(conn: sqlite3.Connection, token: str, name: str, password: str, now: int,
                  language: str | None = None) -> Person:
    """Create the invited person and use the invite up, or change nothing."""
    row = _open_invite(conn, token, now)
    name = clean_name(name, "name", NAME_MAX)
    language = language_tag(language)
    if conn.execute("SELECT 1 FROM people WHERE name_key = ? OR name = ?",
                    (name_key(name), name)).fetchone():
        raise Conflict("name-taken", f"the name {name!r} is taken on this node; choose "
                       "another (add a surname or the group's name)", field="name")
    hashed = hash_password(password)
    cur = conn.execute("UPDATE invites SET used = ? WHERE hash = ? AND used IS NULL AND "
                       "expires > ?", (now, row["hash"], now))
    if cur.rowcount != 1:
        raise NotFound("invite-unknown", INVITE_UNKNOWN)
    person = Person(secrets.token_hex(6), name, row["role"], language)
    conn.execute("INSERT INTO people (id, name, name_key, role, hash, language, created) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (person.id, name, name_key(name),
                                                  person.role, hashed, language, now))
    return person


def _verify(hashed: str, password: Any) -> bool:
    try:
        return PasswordHasher().verify(hashed, password if isinstance(password, str) else "")
    except (VerificationError, InvalidHashError):
        return False


def sign_in(conn: sqlite3.Connection, limiter: SignInLimiter, name: str, password: str,
            address: str, now: int) -> Person:
    """The person with this name and password; never writes (runs on a read connection)."""
    limiter.check(name, address, now / 1000)
    row = None
    if isinstance(name, str) and len(name) <= 4 * NAME_MAX:
        row = conn.execute("SELECT * FROM people WHERE name_key = ? AND revoked IS NULL",
                           (name_key(name),)).fetchone()
    ok = _verify(row["hash"] if row else _DUMMY_HASH, password)
    if not (row and ok):
        limiter.failed(name, address, now / 1000)
        raise Unauthorized("wrong-credentials", WRONG)
    limiter.succeeded(name, address)
    return _person(row)


# -- sessions -----------------------------------------------------------------------------


def _clean_agent(user_agent: Any) -> str:
    text = user_agent if isinstance(user_agent, str) else ""
    return "".join(ch for ch in text[:300] if ch.isprintable())[:200]


def open_session(conn: sqlite3.Connection, person_id: str, user_agent: str | None,
                 now: int) -> tuple[str, Session]:
    """A new session: returns the cookie token (only its SHA-256 is stored) and it."""
    person = _person(_active(conn, person_id))
    conn.execute("DELETE FROM sessions WHERE last_seen < ? OR created < ?",
                 (now - SESSION_IDLE_MS, now - SESSION_MAX_MS))
    token = secrets.token_urlsafe(32)  # 256 bits
    sess = Session(secrets.token_hex(6), person, secrets.token_urlsafe(32), now, now)
    conn.execute("INSERT INTO sessions (id, hash, person_id, csrf, created, last_seen, "
                 "user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (sess.id, _sha(token), person.id, sess.csrf, now, now,
                  _clean_agent(user_agent)))
    return token, sess


def session(conn: sqlite3.Connection, token: str, now: int) -> Session | None:
    """The live session of a cookie token, or None (unknown, idle, too old, revoked)."""
    if not isinstance(token, str) or not 0 < len(token) <= 100:
        return None
    row = conn.execute(
        "SELECT s.id AS sid, s.csrf, s.created AS screated, s.last_seen, p.* FROM sessions s "
        "JOIN people p ON p.id = s.person_id WHERE s.hash = ?", (_sha(token),)).fetchone()
    if (row is None or row["revoked"] is not None or now - row["last_seen"] > SESSION_IDLE_MS
            or now - row["screated"] > SESSION_MAX_MS):
        return None
    return Session(row["sid"], _person(row), row["csrf"], row["screated"], row["last_seen"])


def touch_session(conn: sqlite3.Connection, session_id: str, now: int) -> None:
    conn.execute("UPDATE sessions SET last_seen = ? WHERE id = ? AND last_seen < ?",
                 (now, session_id, now))


def close_session(conn: sqlite3.Connection, token: str) -> None:
    """Sign out: the cookie's session ends (an unknown token is no error)."""
    if isinstance(token, str):
        conn.execute("DELETE FROM sessions WHERE hash = ?", (_sha(token),))


def sessions_of(conn: sqlite3.Connection, person_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        "SELECT id, created, last_seen, user_agent FROM sessions WHERE person_id = ? "
        "ORDER BY last_seen DESC, id", (person_id,))]


def revoke_session(conn: sqlite3.Connection, actor: Person, session_id: str) -> None:
    """End one session: one's own, or anyone's for an admin."""
    row = conn.execute("SELECT person_id FROM sessions WHERE id = ?",
                       (str(session_id)[:40],)).fetchone()
    if row is None or (row["person_id"] != actor.id and actor.role != "admin"):
        raise NotFound("session-unknown", "no such session (it may have ended already); "
                       "reload the list of sessions")
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


# -- people -------------------------------------------------------------------------------


def set_language(conn: sqlite3.Connection, person_id: str, language: str | None) -> None:
    language = language_tag(language)
    _active(conn, person_id)
    conn.execute("UPDATE people SET language = ? WHERE id = ?", (language, person_id))


def by_name(conn: sqlite3.Connection, name: str) -> Person | None:
    """The active person of this name (case-insensitive), or None."""
    row = conn.execute("SELECT * FROM people WHERE name_key = ? AND revoked IS NULL",
                       (name_key(str(name)),)).fetchone()
    return _person(row) if row else None


def named(conn: sqlite3.Connection, name: str) -> Person:
    """The active person of this name, or NotFound."""
    person = by_name(conn, name)
    if person is None:
        raise NotFound("person-unknown", f"nobody named {str(name)[:80]!r} can sign in here; "
                       "'aidmesh person list' shows who can", field="name")
    return person


def list_people(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        "SELECT id, name, role, language, created, revoked FROM people ORDER BY created, id")]


def _other_admins(conn: sqlite3.Connection, person_id: str) -> int:
    return conn.execute("SELECT count(*) FROM people WHERE role = 'admin' AND revoked IS "
                        "NULL AND id != ?", (person_id,)).fetchone()[0]


def _keep_an_admin(conn: sqlite3.Connection, row: sqlite3.Row) -> None:
    if row["role"] == "admin" and _other_admins(conn, row["id"]) == 0:
        raise Conflict("last-admin", f"{row['name']} is the last admin: make another person "
                       "admin first, or nobody could invite or manage people")


def set_role(conn: sqlite3.Connection, actor: Person | None, person_id: str,
             role: str) -> None:
    _admin_only(conn, actor, "change roles")
    _check_role(role)
    row = _active(conn, person_id)
    if role != "admin":
        _keep_an_admin(conn, row)
    conn.execute("UPDATE people SET role = ? WHERE id = ?", (role, row["id"]))


def revoke_person(conn: sqlite3.Connection, actor: Person | None, person_id: str,
                  now: int | None = None) -> None:
    """Remove a person: their sessions and unused invites end at once; the audit trail
    keeps their name."""
    _admin_only(conn, actor, "remove people")
    row = _active(conn, person_id)
    _keep_an_admin(conn, row)
    conn.execute("UPDATE people SET revoked = ? WHERE id = ?", (now or now_ms(), row["id"]))
    conn.execute("DELETE FROM sessions WHERE person_id = ?", (row["id"],))
    conn.execute("DELETE FROM invites WHERE created_by = ? AND used IS NULL", (row["id"],))


# -- the audit trail ----------------------------------------------------------------------


def acting(person: Person | None, fn: Callable[[Ledger, sqlite3.Connection], T]
           ) -> Callable[[Ledger, sqlite3.Connection], T]:
    """``fn`` that also records ``person`` as the maker of every entry it appends."""
    if person is None:
        return fn

    def run(ledger: Ledger, conn: sqlite3.Connection) -> T:
        me = ledger.identity.public
        row = conn.execute("SELECT seq FROM heads WHERE author = ?", (me,)).fetchone()
        before = row[0] if row else 0
        result = fn(ledger, conn)
        conn.execute("INSERT OR IGNORE INTO entry_people (entry_id, person_id) SELECT id, ? "
                     "FROM entries WHERE author = ? AND seq > ?", (person.id, me, before))
        return result

    return run


def posted_by(conn: sqlite3.Connection, entry_ids: list[str]) -> dict[str, str]:
    """Hex entry id -> name of the person who made it here (ids without one are left out)."""
    wanted = []
    for text in entry_ids:
        try:
            wanted.append(bytes.fromhex(text))
        except (TypeError, ValueError):
            continue
    out: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        rows = conn.execute(
            f"SELECT e.entry_id, p.name FROM entry_people e JOIN people p ON p.id = "
            f"e.person_id WHERE e.entry_id IN ({','.join('?' * len(chunk))})", chunk)
        out.update({r[0].hex(): r[1] for r in rows})
    return out


def base_url(config: Config) -> str:
    """Where people open this node: public_url, else the listening address."""
    if config.public_url:
        return config.public_url.rstrip("/")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.host,
                                                                       config.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def join_link(config: Config, token: str) -> str:
    return f"{base_url(config)}/join/{token}"
