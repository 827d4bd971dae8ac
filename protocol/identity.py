"""Node identity: an Ed25519 key pair whose public key is the node id.

Text form of a node id: ``am`` followed by the 64 lowercase hex digits of the 32-byte
public key. Hex over base32 because every language has it in its standard library.
The sealing (X25519) key is derived from the same secret so a node has one key file;
key files are never to be copied between machines (copies are what fork logs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import IdentityError

NODE_ID_PREFIX = "am"
_NODE_ID_RE = re.compile(r"^am[0-9a-f]{64}\Z")
_ENTRY_ID_RE = re.compile(r"^[0-9a-f]{64}\Z")
SEAL_KEY_INFO = b"aidmesh-seal-key-v1"


def node_id(public_key: bytes) -> str:
    """Text form of a 32-byte public key."""
    if len(public_key) != 32:
        raise IdentityError("a public key is exactly 32 bytes")
    return NODE_ID_PREFIX + public_key.hex()


def parse_node_id(text: str) -> bytes:
    """Parse ``am`` + 64 lowercase hex into the 32-byte public key."""
    if not isinstance(text, str) or not _NODE_ID_RE.match(text):
        raise IdentityError(
            "a node id is 'am' followed by 64 lowercase hex digits "
            f"(got {str(text)[:80]!r})"
        )
    return bytes.fromhex(text[2:])


def entry_id_text(entry_id: bytes) -> str:
    return entry_id.hex()


def parse_entry_id(text: str) -> bytes:
    """Parse an entry id: 64 lowercase hex digits of SHA-256 over the signed header."""
    if not isinstance(text, str) or not _ENTRY_ID_RE.match(text):
        raise IdentityError(
            f"an entry id is 64 lowercase hex digits (got {str(text)[:80]!r})",
            code="bad-entry-id",
        )
    return bytes.fromhex(text)


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A node's secret key. Create with :meth:`generate` or :meth:`from_secret`."""

    secret: bytes = field(repr=False)
    _key: Ed25519PrivateKey = field(repr=False, compare=False)
    public: bytes = b""

    @classmethod
    def from_secret(cls, secret: bytes) -> Identity:
        if len(secret) != 32:
            raise IdentityError("an Ed25519 secret key is exactly 32 bytes", code="bad-key")
        key = Ed25519PrivateKey.from_private_bytes(secret)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(secret=bytes(secret), _key=key, public=public)

    @classmethod
    def generate(cls) -> Identity:
        key = Ed25519PrivateKey.generate()
        return cls.from_secret(
            key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    @property
    def node_id(self) -> str:
        return node_id(self.public)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, the form the node keeps in its 0600 key file."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: bytes) -> Identity:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise IdentityError(f"key file is not a PKCS#8 PEM key: {exc}",
                                code="bad-key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError("key file does not hold an Ed25519 key", code="bad-key")
        return cls.from_secret(
            key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def seal_private(self) -> X25519PrivateKey:
        """The X25519 key for sealed fields, derived so one key file suffices."""
        okm = HKDF(algorithm=SHA256(), length=32, salt=None, info=SEAL_KEY_INFO).derive(
            self.secret
        )
        return X25519PrivateKey.from_private_bytes(okm)

    def seal_public(self) -> bytes:
        return self.seal_private().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
