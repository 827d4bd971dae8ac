"""Sealed fields: private details readable only by the two nodes of an exchange.

Static-static X25519 between the sender's and the recipient's sealing keys (published
in ``profile.seal_key``), HKDF-SHA256 bound to both public keys, ChaCha20-Poly1305 with
a random nonce. Because the key agreement is symmetric, the sender's node can read what
it sealed, and nobody else can, including every relay.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import canonical
from .errors import ProtocolError, SealError
from .kinds import MAX_SEALED

SEAL_VERSION = 1
SEAL_INFO = b"aidmesh/seal/v1"
SEAL_AAD = b"aidmesh/seal/v1"


def _public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def _key(own: X25519PrivateKey, other: bytes, sender: bytes, recipient: bytes) -> bytes:
    try:
        shared = own.exchange(X25519PublicKey.from_public_bytes(other))
    except ValueError as exc:
        raise SealError(f"cannot agree a key with {other.hex()}: {exc}") from None
    return HKDF(algorithm=SHA256(), length=32, salt=None,
                info=SEAL_INFO + sender + recipient).derive(shared)


def seal(own: X25519PrivateKey, recipient: bytes, plaintext: bytes, *,
         nonce: bytes | None = None) -> bytes:
    """Encrypt ``plaintext`` (canonical msgpack of the details) to ``recipient``."""
    if len(recipient) != 32:
        raise SealError("a sealing key is 32 bytes")
    sender = _public(own)
    nonce = os.urandom(12) if nonce is None else nonce
    ct = ChaCha20Poly1305(_key(own, recipient, sender, recipient)).encrypt(
        nonce, plaintext, SEAL_AAD)
    box = canonical.encode({"v": SEAL_VERSION, "from": sender, "to": recipient,
                            "nonce": nonce, "ct": ct})
    if len(box) > MAX_SEALED:
        raise SealError(f"sealed box is {len(box)} bytes; the limit is {MAX_SEALED}",
                        code="seal-too-large")
    return box


def parties(box: bytes) -> tuple[bytes, bytes]:
    """(sender key, recipient key) of a box, so a node can tell whether it may open it."""
    m = _decode(box)
    return m["from"], m["to"]


def open_sealed(own: X25519PrivateKey, box: bytes) -> bytes:
    """Decrypt a box this node sent or received; raises SealError otherwise."""
    m = _decode(box)
    me = _public(own)
    if me == m["to"]:
        other = m["from"]
    elif me == m["from"]:
        other = m["to"]
    else:
        raise SealError("this box was sealed between two other nodes", code="not-a-party")
    key = _key(own, other, m["from"], m["to"])
    try:
        return ChaCha20Poly1305(key).decrypt(m["nonce"], m["ct"], SEAL_AAD)
    except InvalidTag:
        raise SealError("sealed box fails authentication (tampered or wrong key)") from None


def _decode(box: bytes) -> dict:
    try:
        m = canonical.decode(box, max_size=MAX_SEALED)
    except ProtocolError as exc:
        raise SealError(f"sealed box is not canonical msgpack: {exc.detail}") from None
    if (not isinstance(m, dict) or set(m) != {"v", "from", "to", "nonce", "ct"}
            or type(m["v"]) is not int or m["v"] != SEAL_VERSION):
        raise SealError("a sealed box is a map {v: 1, from, to, nonce, ct}")
    for k, size in (("from", 32), ("to", 32), ("nonce", 12)):
        if not isinstance(m[k], bytes) or len(m[k]) != size:
            raise SealError(f"sealed box field {k!r} must be {size} bytes")
    if not isinstance(m["ct"], bytes) or len(m["ct"]) < 16:
        raise SealError("sealed box ciphertext is too short")
    return m
