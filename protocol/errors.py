"""Typed protocol errors.

Every rejection carries a stable machine-readable ``code`` (listed in docs/protocol.md)
and a ``detail`` sentence for humans, so a node can answer with a precise problem+json
and a client in another language can match on the same codes.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Base of every error the protocol raises on bad input."""

    code = "protocol-error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class EncodingError(ProtocolError):
    """Bytes are not the one canonical msgpack form (or exceed structural limits)."""

    code = "malformed"


class IdentityError(ProtocolError):
    """A node id, entry id or key is not in its documented form."""

    code = "bad-node-id"


class HeaderError(ProtocolError):
    """A header is well-encoded msgpack but breaks a header rule."""

    code = "bad-header"


class SignatureError(ProtocolError):
    """The Ed25519 signature does not verify for the header's author."""

    code = "bad-signature"


class PayloadError(ProtocolError):
    """A payload does not match its header or its kind's schema."""

    code = "payload-schema"


class ChainError(ProtocolError):
    """Entries that should form a contiguous run of one log do not."""

    code = "bad-chain"


class ForkProofError(ProtocolError):
    """A fork proof does not prove a fork."""

    code = "not-a-fork"


class FrameError(ProtocolError):
    """A sync stream frame is malformed."""

    code = "bad-frame"


class SealError(ProtocolError):
    """A sealed field cannot be opened (wrong key, tampered, malformed)."""

    code = "bad-seal"
