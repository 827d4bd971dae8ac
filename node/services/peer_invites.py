"""Peering by invite code (spec §14.6): one paste instead of two admins swapping ids.

The inviter makes a code holding its node id, its public URL and a one-time 128-bit
secret with an expiry. The joiner proves it holds the secret with an HMAC over its own
node id, its URL and a nonce (never the secret itself) in one signed request; the
inviter consumes the invite and trusts the joiner in the same transaction, so a code
used twice, even at the same instant, makes one peer. Only two values derived from the
secret are kept (the invite's id and the HMAC key): the database never holds a code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from protocol import ProtocolError, canonical, node_id

from ..config import Config
from ..store.ledger import Ledger
from . import peers
from .errors import Conflict, Forbidden, Invalid, NotFound
from .values import rfc3339

PREFIX = "ami"
CHECK_PREFIX = b"aidmesh/invite/v1\x00"
ID_PREFIX = b"aidmesh/invite/id/v1\x00"
KEY_PREFIX = b"aidmesh/invite/key/v1\x00"
PROOF_PREFIX = b"aidmesh/join/v1\x00"
LINK_PATH = "/peer-invite"
SECRET_BYTES = 16
CHECK_BYTES = 4
MAX_CODE_BYTES = 2200  # a 2,048-byte URL and the rest
MAX_JOIN_BODY = 4096
MAX_HOURS = 30 * 24
HOUR_MS = 3_600_000
KEEP_USED_MS = 30 * 24 * HOUR_MS  # used and expired invites are forgotten after this
_B32 = re.compile(r"^[a-z2-7]+$")
_SPACES = re.compile(r"[\s\-]+")


@dataclass(frozen=True)
class Invite:
    """What a code holds; ``expires`` in Unix seconds (the inviter's clock)."""

    node: bytes
    url: str
    secret: bytes
    expires: int

    @property
    def id(self) -> bytes:
        return invite_id(self.secret)

    @property
    def key(self) -> bytes:
        return join_key(self.secret)


@dataclass(frozen=True)
class PeerInvite:
    """A new invite as its maker sees it (once: the code is not kept)."""

    code: str
    link: str
    expires: int  # ms
    id: str


@dataclass(frozen=True)
class JoinRequest:
    invite: bytes
    nonce: bytes
    proof: bytes
    url: str


def invite_id(secret: bytes) -> bytes:
    return hashlib.sha256(ID_PREFIX + secret).digest()[:16]


def join_key(secret: bytes) -> bytes:
    return hashlib.sha256(KEY_PREFIX + secret).digest()


def checksum(record: bytes) -> bytes:
    return hashlib.sha256(CHECK_PREFIX + record).digest()[:CHECK_BYTES]


def proof(key: bytes, inviter: bytes, joiner: bytes, nonce: bytes, url: str) -> bytes:
    """HMAC-SHA256 binding the secret to this joiner, its URL and this request."""
    message = PROOF_PREFIX + inviter + joiner + nonce + url.encode()
    return hmac.new(key, message, hashlib.sha256).digest()


# -- the code --------------------------------------------------------------------------------


def encode_code(invite: Invite) -> str:
    record = canonical.encode([1, invite.node, invite.url, invite.secret, invite.expires])
    text = base64.b32encode(record + checksum(record)).decode().rstrip("=").lower()
    return PREFIX + text


def link(url: str, code: str) -> str:
    return f"{url.rstrip('/')}{LINK_PATH}?code={code}"


def _bad(detail: str, code: str = "bad-invite") -> ProtocolError:
    return ProtocolError(detail, code=code)


def code_of(text: str) -> str:
    """The code in what a person pasted: the code itself (any case, spaces or dashes
    between groups) or a whole invite link."""
    text = text.strip()
    if "://" in text:
        query = parse_qs(urlsplit(text).query).get("code")
        text = query[0] if query else ""
    return _SPACES.sub("", text).lower()


def decode_code(text: Any) -> Invite:
    """Spec §14.6 steps 1-5; raises ProtocolError (`bad-invite`, `invite-checksum`)."""
    if not isinstance(text, str) or len(text) > 2 * MAX_CODE_BYTES:
        raise _bad("an invite code is text starting with 'ami'")
    text = code_of(text)
    body = text[len(PREFIX):]
    if not text.startswith(PREFIX) or not body or not _B32.match(body):
        raise _bad("an invite code starts with 'ami', followed by letters a-z and digits 2-7")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except binascii.Error:
        raw = b""
    if not raw or base64.b32encode(raw).decode().rstrip("=").lower() != body:
        raise _bad("the invite code is cut short or has extra characters")
    if not CHECK_BYTES < len(raw) <= MAX_CODE_BYTES:
        raise _bad("the invite code is too short or too long")
    record, check = raw[:-CHECK_BYTES], raw[-CHECK_BYTES:]
    if not hmac.compare_digest(checksum(record), check):
        raise _bad("the invite code does not check out: a character is wrong or missing "
                   "(copy it again, whole)", "invite-checksum")
    try:
        value = canonical.decode(record)
    except ProtocolError as exc:
        raise _bad(f"the invite code's record is not canonical msgpack: {exc.detail}") \
            from None
    if not (isinstance(value, list) and len(value) == 5 and value[0] == 1
            and not isinstance(value[0], bool)):
        raise _bad("the invite code is not a version 1 invite")
    _, node, url, secret, expires = value
    if not (isinstance(node, bytes) and len(node) == 32 and isinstance(secret, bytes)
            and len(secret) == SECRET_BYTES and isinstance(url, str)
            and isinstance(expires, int) and not isinstance(expires, bool) and expires >= 0):
        raise _bad("the invite code's fields are not [1, node key, url, secret, expiry]")
    try:
        peers.check_url(url)
    except Invalid as exc:
        raise _bad(f"the invite code's URL is not usable: {exc.detail}") from None
    return Invite(node, url, secret, expires)


def parse(text: Any) -> Invite:
    """A pasted code (or link) for the service layer: Invalid `invite-malformed`."""
    try:
        return decode_code(text)
    except ProtocolError as exc:
        raise Invalid("invite-malformed", exc.detail, field="code", reason=exc.code) from None


# -- the handshake messages ---------------------------------------------------------------


def encode_join_request(req: JoinRequest) -> bytes:
    return canonical.encode({"invite": req.invite, "nonce": req.nonce, "proof": req.proof,
                             "url": req.url})


def decode_join_request(body: bytes) -> JoinRequest:
    """Spec §14.6 join request steps; ProtocolError `bad-join-request` or §2.2 codes."""
    value = canonical.decode(body, max_size=MAX_JOIN_BODY)
    if not isinstance(value, dict) or set(value) != {"invite", "nonce", "proof", "url"}:
        raise _bad("a join request is a map of invite, nonce, proof and url",
                   "bad-join-request")
    sizes = {"invite": 16, "nonce": 16, "proof": 32}
    for name, size in sizes.items():
        if not isinstance(value[name], bytes) or len(value[name]) != size:
            raise _bad(f"{name} must be {size} bytes", "bad-join-request")
    try:
        url = peers.check_url(value["url"])
    except Invalid as exc:
        raise _bad(f"url: {exc.detail}", "bad-join-request") from None
    return JoinRequest(value["invite"], value["nonce"], value["proof"], url)


def encode_answer(node: bytes, name: str, url: str, added: bool) -> bytes:
    return canonical.encode({"added": added, "name": name, "node": node, "url": url})


def decode_answer(body: bytes) -> dict[str, Any]:
    value = canonical.decode(body, max_size=MAX_JOIN_BODY)
    if not (isinstance(value, dict) and set(value) == {"added", "name", "node", "url"}
            and isinstance(value["added"], bool) and isinstance(value["name"], str)
            and isinstance(value["node"], bytes) and len(value["node"]) == 32
            and isinstance(value["url"], str)):
        raise _bad("a join answer is a map of added, name, node and url", "bad-join-answer")
    return value


# -- the inviter's table ------------------------------------------------------------------


def create(conn: sqlite3.Connection, ledger: Ledger, config: Config, now: int,
           hours: Any = 72) -> PeerInvite:
    """A new one-time invite, valid ``hours`` (1-720) from ``now`` (ms)."""
    if not config.public_url:
        raise Conflict("no-public-url", "set public_url in aidmesh.toml (or AIDMESH_PUBLIC_URL)"
                       " to the base URL other nodes reach this one at, e.g. "
                       "https://aid.example.org, then make the invite again")
    try:
        url = peers.check_url(config.public_url)
    except Invalid as exc:
        raise Conflict("no-public-url", f"public_url is not usable: {exc.detail}") from None
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_HOURS:
        raise Invalid("invalid-field", f"an invite is valid for 1 to {MAX_HOURS} hours",
                      field="hours")
    expires_s = (now + hours * HOUR_MS) // 1000
    invite = Invite(ledger.identity.public, url, secrets.token_bytes(SECRET_BYTES), expires_s)
    conn.execute("DELETE FROM peer_invites WHERE expires < ?", (now - KEEP_USED_MS,))
    conn.execute("INSERT INTO peer_invites (id, key, created, expires) VALUES (?, ?, ?, ?)",
                 (invite.id, invite.key, now, expires_s * 1000))
    code = encode_code(invite)
    return PeerInvite(code, link(url, code), expires_s * 1000, invite.id.hex())


def open_invites(conn: sqlite3.Connection, now: int) -> list[dict[str, Any]]:
    """Invites not used, not expired and not revoked, newest first."""
    return [{"id": r["id"].hex(), "created": r["created"], "expires": r["expires"]}
            for r in conn.execute("SELECT id, created, expires FROM peer_invites WHERE "
                                  "used IS NULL AND expires > ? ORDER BY created DESC, id",
                                  (now,))]


def revoke(conn: sqlite3.Connection, invite_id: Any) -> None:
    """Forget an unused invite: its code is refused from now on."""
    try:
        key = bytes.fromhex(invite_id) if isinstance(invite_id, str) else b""
    except ValueError:
        key = b""
    cur = conn.execute("DELETE FROM peer_invites WHERE id = ? AND used IS NULL", (key,))
    if cur.rowcount != 1:
        raise NotFound("not-found", "no unused invite has that id ('aidmesh peer invites' "
                       "lists them)", field="id")


def accept(conn: sqlite3.Connection, ledger: Ledger, joiner: bytes, req: JoinRequest,
           now: int) -> bool:
    """The inviter's side, in one transaction: check the proof, consume the invite and
    trust the joiner at its URL. True if a trust entry was appended. The same joiner
    asking again (its answer was lost) is answered again and changes nothing."""
    if joiner == ledger.identity.public:
        raise Forbidden("invite-own", "a node cannot join its own invite")
    row = conn.execute("SELECT key, expires, used, used_by FROM peer_invites WHERE id = ?",
                       (req.invite,)).fetchone()
    if row is None:
        raise Forbidden("invite-unknown", "this node has no such invite: it was revoked, "
                        "or the code was mistyped; ask for a new code")
    expected = proof(row["key"], ledger.identity.public, joiner, req.nonce, req.url)
    if not hmac.compare_digest(expected, req.proof):
        raise Forbidden("bad-invite-proof", "the proof does not match the invite's secret; "
                        "paste the code again, whole")
    if row["used"] is not None and row["used_by"] != joiner:
        raise Conflict("invite-used", f"this invite was already used on "
                       f"{rfc3339(row['used'])}; ask for a new code")
    if row["used"] is not None:
        return False  # answered again, never trusted again (the admin may have removed it)
    if row["expires"] <= now:
        raise Forbidden("invite-expired", f"this invite expired on "
                        f"{rfc3339(row['expires'])}; ask for a new code")
    cur = conn.execute("UPDATE peer_invites SET used = ?, used_by = ?, used_url = ? "
                       "WHERE id = ? AND used IS NULL", (now, joiner, req.url, req.invite))
    if cur.rowcount != 1:  # cannot happen under the single writer; never trust twice
        raise Conflict("invite-used", "this invite was just used; ask for a new code")
    return peers.add(ledger, conn, node_id(joiner), req.url) is not None


def trust_inviter(conn: sqlite3.Connection, ledger: Ledger, inviter: bytes, url: str) -> bool:
    """The joiner's side after the inviter answered: True if a trust entry was appended."""
    return peers.add(ledger, conn, node_id(inviter), url) is not None
