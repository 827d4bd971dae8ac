"""aidmesh protocol core: pure, sans-I/O. Depends on cryptography and msgpack only."""

from .canonical import decode, encode
from .entry import (
    MAX_HEADER_SIZE,
    MAX_PAYLOAD_SIZE,
    SIGNING_PREFIX,
    VERSION,
    Entry,
    Header,
    check_payload,
    check_signature,
    create_entry,
    decode_header,
    verify_chain,
    verify_entry,
    verify_run,
)
from .errors import (
    ChainError,
    EncodingError,
    ForkProofError,
    FrameError,
    HeaderError,
    IdentityError,
    PayloadError,
    ProtocolError,
    SealError,
    SignatureError,
)
from .fork import ForkProof, decode_fork_proof, make_fork_proof
from .identity import Identity, node_id, parse_entry_id, parse_node_id
from .kinds import KINDS, validate_payload

__all__ = [
    "MAX_HEADER_SIZE", "MAX_PAYLOAD_SIZE", "SIGNING_PREFIX", "VERSION", "KINDS",
    "ChainError", "EncodingError", "Entry", "ForkProof", "ForkProofError", "FrameError",
    "Header", "HeaderError", "Identity", "IdentityError", "PayloadError", "ProtocolError",
    "SealError", "SignatureError", "check_payload", "check_signature", "create_entry",
    "decode", "decode_fork_proof", "decode_header", "encode", "make_fork_proof", "node_id",
    "parse_entry_id", "parse_node_id", "validate_payload", "verify_chain", "verify_entry",
    "verify_run",
]
