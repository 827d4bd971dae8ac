"""Node-to-node request signatures: RFC 9421 with the node's Ed25519 key.

Built on the `http-message-signatures` library. Every federation request covers
@method, @target-uri and (with a body) Content-Digest (RFC 9530), with created, keyid
(the caller's node id) and a random nonce. Verification order is fixed so an unknown
caller costs no signature work: keyid -> trusted? (403) -> signature, digest, clock,
nonce (401).
"""

from __future__ import annotations

import datetime
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from protocol import Identity, ProtocolError, parse_node_id

MAX_SKEW_S = 300
NONCE_TTL_S = 600
LABEL = "aidmesh"
COVERED = ("@method", "@target-uri")
COVERED_WITH_BODY = ("@method", "@target-uri", "content-digest")


class SignatureProblem(Exception):
    """Why a request's signature was refused; ``status`` is 401 or 403."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass
class _Message:
    method: str
    url: str
    headers: Any


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, identity: Identity | None = None, public: bytes | None = None) -> None:
        self.identity, self.public = identity, public

    def resolve_private_key(self, key_id: str):
        assert self.identity is not None
        return self.identity._key  # noqa: SLF001 - the key object the library expects

    def resolve_public_key(self, key_id: str):
        return Ed25519PublicKey.from_public_bytes(self.public) if self.public else None


def sign_request(identity: Identity, method: str, url: str, body: bytes | None,
                 headers: dict[str, str] | None = None, *,
                 created: datetime.datetime | None = None) -> dict[str, str]:
    """Headers to send: the caller's plus Content-Digest, Signature-Input, Signature."""
    out: dict[str, str] = dict(headers or {})
    message = _Message(method.upper(), url, out)
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                               key_resolver=_Keys(identity))
    signer.sign(message, key_id=identity.node_id, label=LABEL, tag=LABEL,
                created=created or datetime.datetime.now(datetime.UTC),
                nonce=secrets.token_urlsafe(16),
                covered_component_ids=COVERED_WITH_BODY if body else COVERED,
                body=body if body else None, include_alg=False)
    return out


def caller_key_id(headers: Mapping[str, str]) -> str:
    """The keyid a request claims, read without any cryptography."""
    raw = headers.get("Signature-Input")
    if not raw:
        raise SignatureProblem(401, "unsigned", "federation requests must carry an RFC 9421 "
                               "signature (Signature-Input and Signature headers)")
    try:
        parsed = http_sf.parse(raw.encode(), tltype="dictionary")
        member = parsed[LABEL]
        keyid = member[1]["keyid"]
    except (KeyError, IndexError, TypeError, ValueError, Exception):  # noqa: BLE001
        raise SignatureProblem(401, "bad-signature-input",
                               f"Signature-Input must hold a '{LABEL}' signature with a "
                               "keyid") from None
    if not isinstance(keyid, str):
        raise SignatureProblem(401, "bad-signature-input", "keyid must be a string")
    return keyid


def caller_of(headers: Mapping[str, str]) -> bytes:
    keyid = caller_key_id(headers)
    try:
        return parse_node_id(keyid)
    except ProtocolError:
        raise SignatureProblem(403, "unknown-caller", f"keyid {keyid[:80]!r} is not a node "
                               "id this node knows") from None


@dataclass
class NonceCache:
    """Nonces seen in the last NONCE_TTL_S seconds; a repeat is a replay."""

    ttl: float = NONCE_TTL_S
    _seen: dict[str, float] = field(default_factory=dict)
    _next_sweep: float = 0.0

    def check_and_add(self, nonce: str, now: float) -> bool:
        if now >= self._next_sweep:
            self._seen = {n: t for n, t in self._seen.items() if t > now}
            self._next_sweep = now + 30
        if nonce in self._seen:
            return False
        self._seen[nonce] = now + self.ttl
        return True


def verify_request(caller: bytes, method: str, url: str, headers: Mapping[str, str],
                   body: bytes, nonces: NonceCache) -> None:
    """Check signature, digest, clock window and nonce; raise SignatureProblem (401)."""
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=_Keys(public=caller))
    verifier.max_clock_skew = datetime.timedelta(seconds=MAX_SKEW_S)
    message = _Message(method.upper(), url, headers)
    required = COVERED_WITH_BODY if body else COVERED
    try:
        results = verifier.verify(message, max_age=datetime.timedelta(0), expect_tag=LABEL,
                                  require_components=required, body=body)
    except InvalidSignature as exc:
        text = str(exc) or "the signature does not verify with the caller's key"
        if '"created"' in text or "allowable age" in text:
            code = "stale-signature"
            text += f"; clocks must agree within {MAX_SKEW_S} s (check NTP)"
        elif "Content-Digest" in text or "digest" in text.lower():
            code = "bad-digest"
        else:
            code = "bad-signature"
        raise SignatureProblem(401, code, f"request signature refused: {text}") from None
    except HTTPMessageSignaturesException as exc:
        raise SignatureProblem(401, "bad-signature", f"request signature refused: {exc}") \
            from None
    params = results[0].parameters
    nonce = params.get("nonce")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
        raise SignatureProblem(401, "missing-nonce", "the signature must cover a nonce")
    if not nonces.check_and_add(nonce, time.time()):
        raise SignatureProblem(401, "replayed", "this request was already received (nonce "
                               "seen before); sign every request afresh")
