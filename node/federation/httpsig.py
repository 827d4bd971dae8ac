"""Node-to-node request signatures: RFC 9421 with the node's Ed25519 key.

Built on the `http-message-signatures` library. Every federation request covers
@method, @target-uri and (with a body) Content-Digest (RFC 9530), with created, keyid
(the caller's node id) and a random nonce. Checks are split so the cheapest come first
and nothing is read or charged for a request that cannot be genuine: `claim_of` reads
the keyid with no cryptography (the server refuses unknown callers there, 403);
`verify_headers` checks the clock window, the nonce's presence and the signature over
the headers, before the body is read; `verify_body` checks the body against the signed
Content-Digest once it has arrived. Whether a nonce was seen before is the server's
business (it is kept in the database, node/store/nonces.py, so it survives restarts).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    VerifyResult,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from protocol import Identity, ProtocolError, parse_node_id

MAX_SKEW_S = 300
NONCE_TTL_S = 600
NONCE_LENGTH = (8, 128)
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


@dataclass(frozen=True)
class Claim:
    """What a request's Signature-Input claims, read without any cryptography."""

    caller: bytes  # the public key named by keyid
    nonce: Any  # as sent: checked by verify_headers


def claim_of(headers: Mapping[str, str]) -> Claim:
    """The caller a request claims to be: 401 if unsigned or unreadable, 403 if the keyid
    is not a node id."""
    raw = headers.get("Signature-Input")
    if not raw:
        raise SignatureProblem(401, "unsigned", "federation requests must carry an RFC 9421 "
                               "signature (Signature-Input and Signature headers)")
    try:
        parsed = http_sf.parse(raw.encode(), tltype="dictionary")
        params = parsed[LABEL][1]
        keyid = params["keyid"]
    except Exception:  # noqa: BLE001 - any parse failure is the same refusal
        raise SignatureProblem(401, "bad-signature-input",
                               f"Signature-Input must hold a '{LABEL}' signature with a "
                               "keyid") from None
    if not isinstance(keyid, str):
        raise SignatureProblem(401, "bad-signature-input", "keyid must be a string")
    try:
        caller = parse_node_id(keyid)
    except ProtocolError:
        raise SignatureProblem(403, "unknown-caller", f"keyid {keyid[:80]!r} is not a node "
                               "id this node knows") from None
    return Claim(caller, params.get("nonce"))


def caller_of(headers: Mapping[str, str]) -> bytes:
    """The public key a request's keyid names (verified only once the middleware passed)."""
    return claim_of(headers).caller


def verify_headers(claim: Claim, method: str, url: str, headers: Mapping[str, str]
                   ) -> list[VerifyResult]:
    """Clock window, nonce present, signature over the covered headers (no body yet);
    raises SignatureProblem (401). The result goes to `verify_body`."""
    nonce = claim.nonce
    low, high = NONCE_LENGTH
    if not isinstance(nonce, str) or not low <= len(nonce) <= high:
        raise SignatureProblem(401, "missing-nonce", f"the signature must cover a nonce of "
                               f"{low}-{high} characters, new for every request")
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=_Keys(public=claim.caller))
    verifier.max_clock_skew = datetime.timedelta(seconds=MAX_SKEW_S)
    try:
        return verifier.verify(_Message(method.upper(), url, headers),
                               max_age=datetime.timedelta(0), expect_tag=LABEL,
                               require_components=COVERED)
    except InvalidSignature as exc:
        text = str(exc) or "the signature does not verify with the caller's key"
        if '"created"' in text or "allowable age" in text:
            code = "stale-signature"
            text += f"; clocks must agree within {MAX_SKEW_S} s (check NTP)"
        elif "digest" in text.lower():
            code = "bad-digest"
        else:
            code = "bad-signature"
        raise SignatureProblem(401, code, f"request signature refused: {text}") from None
    except HTTPMessageSignaturesException as exc:
        raise SignatureProblem(401, "bad-signature", f"request signature refused: {exc}") \
            from None


def verify_body(results: list[VerifyResult], headers: Mapping[str, str], body: bytes) -> None:
    """A body must be covered by the signed Content-Digest and match it (401 bad-digest)."""
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=None)
    try:
        verifier.verify_body(_Message("", "", headers), results, body)
    except (InvalidSignature, HTTPMessageSignaturesException) as exc:
        raise SignatureProblem(401, "bad-digest", f"request body refused: {exc}; sign a "
                               "Content-Digest (RFC 9530) of exactly the body sent") from None
