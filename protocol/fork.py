"""Fork proofs: two authentic entries of one author at the same seq.

A fork can only come from the author's key signing twice (usually a copied key file),
so the proof is just the two signed headers; anyone can check it with no other state.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import canonical
from .entry import Entry, check_signature, decode_header
from .errors import ForkProofError, ProtocolError
from .identity import node_id

MAX_FORK_PROOF_SIZE = 2048


@dataclass(frozen=True, slots=True)
class ForkProof:
    """Two signed headers, ordered by entry id so a proof has one encoding."""

    first: Entry
    second: Entry

    @property
    def author(self) -> bytes:
        return self.first.header.author

    @property
    def seq(self) -> int:
        return self.first.header.seq

    def encode(self) -> bytes:
        return canonical.encode({"a": self.first.raw, "b": self.second.raw})

    def describe(self) -> str:
        return (f"{node_id(self.author)} signed two different entries at seq {self.seq}: "
                f"{self.first.id.hex()} and {self.second.id.hex()}")


def make_fork_proof(x: Entry, y: Entry) -> ForkProof:
    """Build (and check) a proof from two entries; raises ForkProofError if not a fork."""
    for e in (x, y):
        try:
            check_signature(e)
        except ProtocolError as exc:
            raise ForkProofError(f"fork evidence must be signed: {exc.detail}") from None
    if x.header.author != y.header.author:
        raise ForkProofError("the two entries have different authors")
    if x.header.seq != y.header.seq:
        raise ForkProofError("the two entries have different seq numbers")
    if x.id == y.id:
        raise ForkProofError("the two entries are the same entry")
    a, b = (x, y) if x.id < y.id else (y, x)
    return ForkProof(a.without_payload(), b.without_payload())


def decode_fork_proof(data: bytes) -> ForkProof:
    """Decode and verify a proof received from anyone."""
    try:
        m = canonical.decode(data, max_size=MAX_FORK_PROOF_SIZE)
    except ProtocolError as exc:
        raise ForkProofError(f"fork proof is not canonical msgpack: {exc.detail}") from None
    if not isinstance(m, dict) or set(m) != {"a", "b"}:
        raise ForkProofError("a fork proof is a map with exactly the keys 'a' and 'b'")
    try:
        x, y = decode_header(m["a"]), decode_header(m["b"])
    except ProtocolError as exc:
        raise ForkProofError(f"fork proof holds a malformed header: {exc.detail}") from None
    proof = make_fork_proof(x, y)
    if proof.first.id != x.id:
        raise ForkProofError("fork proof headers must be ordered by entry id")
    return proof
