"""Entries: a signed header plus a detached payload.

Wire form of a signed header: ``header_bytes || signature`` where ``header_bytes`` is a
canonical msgpack map and ``signature`` is the 64-byte Ed25519 signature over
``SIGNING_PREFIX || header_bytes``. The entry id is SHA-256 of the whole signed header,
so the payload can be erased while every header, and the chain, still verifies.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import canonical
from .errors import ChainError, EncodingError, HeaderError, PayloadError, SignatureError
from .identity import Identity, node_id, sha256, verify_signature
from .kinds import check_kind_name, validate_payload

VERSION = 1
SIGNING_PREFIX = b"aidmesh/entry/v1\x00"
SIGNATURE_SIZE = 64
MAX_HEADER_SIZE = 512
MAX_PAYLOAD_SIZE = 64 * 1024
MAX_SEQ = 2**53 - 1
MAX_TIMESTAMP = 2**53 - 1
HEADER_FIELDS = frozenset({"v", "author", "seq", "back", "ts", "kind", "phash", "psize"})


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    author: bytes
    seq: int
    backlink: bytes | None
    timestamp: int
    kind: str
    payload_hash: bytes
    payload_size: int

    def to_map(self) -> dict[str, Any]:
        m: dict[str, Any] = {
            "v": self.version,
            "author": self.author,
            "seq": self.seq,
            "ts": self.timestamp,
            "kind": self.kind,
            "phash": self.payload_hash,
            "psize": self.payload_size,
        }
        if self.backlink is not None:
            m["back"] = self.backlink
        return m


@dataclass(frozen=True, slots=True)
class Entry:
    """A structurally valid entry. ``payload`` is None when erased or not transferred."""

    header: Header
    raw: bytes
    id: bytes
    payload: bytes | None = None
    # The decoded payload, once verified; saves decoding it again downstream.
    value: Any = field(default=None, compare=False, repr=False)

    @property
    def header_bytes(self) -> bytes:
        return self.raw[:-SIGNATURE_SIZE]

    @property
    def signature(self) -> bytes:
        return self.raw[-SIGNATURE_SIZE:]

    @property
    def author(self) -> bytes:
        return self.header.author

    @property
    def author_id(self) -> str:
        return node_id(self.header.author)

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def kind(self) -> str:
        return self.header.kind

    def content(self) -> Any:
        """The decoded payload (already validated when the entry was verified)."""
        if self.payload is None:
            return None
        return self.value if self.value is not None else canonical.decode(self.payload)

    def without_payload(self) -> Entry:
        return Entry(self.header, self.raw, self.id, None)


def _field_error(detail: str) -> HeaderError:
    return HeaderError(detail, code="bad-header")


def _bin32(m: dict[str, Any], key: str) -> bytes:
    v = m[key]
    if not isinstance(v, bytes) or len(v) != 32:
        raise _field_error(f"header field {key!r} must be 32 bytes of msgpack bin")
    return v


def _int(m: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = m[key]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _field_error(f"header field {key!r} must be an integer in [{lo}, {hi}]")
    return v


def decode_header(raw: bytes) -> Entry:
    """Structural checks of a signed header (rules H1-H9 of the spec); no signature check."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise EncodingError("a signed header is bytes", code="malformed")
    raw = bytes(raw)
    if len(raw) > MAX_HEADER_SIZE + SIGNATURE_SIZE:
        raise HeaderError(
            f"signed header is {len(raw)} bytes; the limit is "
            f"{MAX_HEADER_SIZE + SIGNATURE_SIZE}",
            code="header-too-large",
        )
    if len(raw) <= SIGNATURE_SIZE:
        raise HeaderError("signed header is shorter than a signature", code="malformed")
    m = canonical.decode(raw[:-SIGNATURE_SIZE])
    if not isinstance(m, dict):
        raise _field_error("header must be a msgpack map")
    if "v" in m and (type(m["v"]) is not int or m["v"] != VERSION):
        raise HeaderError(f"unsupported protocol version {m['v']!r}; this node speaks "
                          f"{VERSION}", code="unsupported-version")
    missing = HEADER_FIELDS - {"back"} - m.keys()
    if missing:
        raise _field_error(f"header is missing field(s) {', '.join(sorted(missing))}")
    unknown = m.keys() - HEADER_FIELDS
    if unknown:
        raise _field_error(f"header has unknown field(s) {', '.join(sorted(unknown))}")
    seq = _int(m, "seq", 1, MAX_SEQ)
    if seq == 1 and "back" in m:
        raise HeaderError("the first entry (seq 1) has no backlink", code="bad-backlink")
    if seq > 1 and "back" not in m:
        raise HeaderError(f"entry seq {seq} must carry a backlink", code="bad-backlink")
    try:
        kind = check_kind_name(m["kind"])
    except PayloadError as exc:
        raise HeaderError(exc.detail, code="bad-kind") from None
    psize = _int(m, "psize", 0, 2**32)
    if psize > MAX_PAYLOAD_SIZE:
        raise HeaderError(f"payload size {psize} exceeds {MAX_PAYLOAD_SIZE} bytes",
                          code="payload-too-large")
    header = Header(
        version=VERSION,
        author=_bin32(m, "author"),
        seq=seq,
        backlink=_bin32(m, "back") if seq > 1 else None,
        timestamp=_int(m, "ts", 0, MAX_TIMESTAMP),
        kind=kind,
        payload_hash=_bin32(m, "phash"),
        payload_size=psize,
    )
    return Entry(header=header, raw=raw, id=sha256(raw))


def check_signature(entry: Entry) -> None:
    if not verify_signature(entry.header.author, entry.signature,
                            SIGNING_PREFIX + entry.header_bytes):
        raise SignatureError(
            f"signature of {entry.author_id} seq {entry.seq} does not verify",
            code="bad-signature",
        )


def check_payload(header: Header, payload: bytes) -> Any:
    """Payload rules P1-P4: size, hash, canonical msgpack, kind schema."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PayloadError("a payload is bytes", code="malformed")
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise PayloadError(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_SIZE}",
                           code="payload-too-large")
    if len(payload) != header.payload_size:
        raise PayloadError(f"payload is {len(payload)} bytes but the header says "
                           f"{header.payload_size}", code="payload-size-mismatch")
    if sha256(payload) != header.payload_hash:
        raise PayloadError("payload hash does not match the header", code="payload-hash-mismatch")
    content = canonical.decode(payload)
    return validate_payload(header.kind, content)


def verify_entry(raw: bytes, payload: bytes | None = None, *,
                 now_ms: int | None = None, max_future_ms: int = 600_000) -> Entry:
    """Verify one entry on its own signature (used for pushes and fork evidence)."""
    entry = decode_header(raw)
    if now_ms is not None and entry.header.timestamp > now_ms + max_future_ms:
        raise HeaderError(
            f"timestamp is {(entry.header.timestamp - now_ms) // 1000} s in the future; "
            "check the author's clock", code="future-timestamp")
    check_signature(entry)
    if payload is None:
        return entry
    value = check_payload(entry.header, payload)
    return Entry(entry.header, entry.raw, entry.id, bytes(payload), value)


def verify_run(
    items: Sequence[tuple[bytes, bytes | None]],
    *,
    previous: Entry | None = None,
    now_ms: int | None = None,
    max_future_ms: int = 600_000,
) -> list[Entry]:
    """Verify a contiguous run of one log, checking only the newest entry's signature.

    Rule A (authenticity): an entry is authentic if its own signature verifies, or if a
    later authentic entry of the same log links to it. Every backlink is a hash of the
    previous signed header, so the newest signature vouches for every earlier byte.
    ``previous`` is an already-authentic entry the run continues; without it the run
    must start at seq 1. Raises on the first rule broken, naming the seq.
    """
    if not items:
        raise ChainError("a run has at least one entry", code="empty-run")
    return verify_chain([decode_header(raw) for raw, _ in items], [p for _, p in items],
                        previous=previous, now_ms=now_ms, max_future_ms=max_future_ms)


def verify_chain(
    entries: Sequence[Entry],
    payloads: Sequence[bytes | None],
    *,
    previous: Entry | None = None,
    now_ms: int | None = None,
    max_future_ms: int = 600_000,
) -> list[Entry]:
    """`verify_run` for headers already decoded with `decode_header` (rules R0-R5)."""
    if not entries:
        raise ChainError("a run has at least one entry", code="empty-run")
    prev = previous
    for entry in entries:
        h = entry.header
        if prev is None:
            if h.seq != 1:
                raise ChainError(f"run starts at seq {h.seq} with nothing before it",
                                 code="seq-gap")
        else:
            if h.author != prev.header.author:
                raise ChainError(f"seq {h.seq} has another author than the run",
                                 code="author-mismatch")
            if h.seq != prev.header.seq + 1:
                raise ChainError(f"seq {h.seq} follows seq {prev.header.seq}", code="seq-gap")
            if h.backlink != prev.id:
                raise ChainError(f"seq {h.seq} does not link to the entry before it",
                                 code="backlink-mismatch")
            if h.timestamp < prev.header.timestamp:
                raise ChainError(f"seq {h.seq} has a timestamp before its predecessor's",
                                 code="timestamp-regression")
        prev = entry
    last = entries[-1]
    if now_ms is not None and last.header.timestamp > now_ms + max_future_ms:
        raise HeaderError(f"seq {last.seq} has a timestamp in the future",
                          code="future-timestamp")
    check_signature(last)
    out = []
    for entry, payload in zip(entries, payloads, strict=True):
        if payload is not None:
            value = check_payload(entry.header, payload)
            entry = Entry(entry.header, entry.raw, entry.id, bytes(payload), value)
        out.append(entry)
    return out


def create_entry(
    identity: Identity,
    kind: str,
    content: Any,
    *,
    previous: Entry | None = None,
    timestamp: int | None = None,
) -> Entry:
    """Sign the next entry of ``identity``'s log, validating the payload first."""
    check_kind_name(kind)
    validate_payload(kind, content)
    payload = canonical.encode(content)
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise PayloadError(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_SIZE}",
                           code="payload-too-large")
    if previous is not None and previous.header.author != identity.public:
        raise ChainError("previous entry belongs to another author", code="author-mismatch")
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    if previous is not None:
        ts = max(ts, previous.header.timestamp)
    header = Header(
        version=VERSION,
        author=identity.public,
        seq=1 if previous is None else previous.header.seq + 1,
        backlink=None if previous is None else previous.id,
        timestamp=ts,
        kind=kind,
        payload_hash=sha256(payload),
        payload_size=len(payload),
    )
    header_bytes = canonical.encode(header.to_map())
    raw = header_bytes + identity.sign(SIGNING_PREFIX + header_bytes)
    return Entry(header=header, raw=raw, id=sha256(raw), payload=payload)
