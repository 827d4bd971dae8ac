"""Sync messages: heads vectors, their digest, and the entry stream framing.

Logs are single-writer and totally ordered, so {author: (seq, head id)} is a node's whole
state; comparing two vectors gives exactly which suffixes to pull.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import msgpack

from . import canonical
from .entry import MAX_HEADER_SIZE, MAX_PAYLOAD_SIZE, SIGNATURE_SIZE
from .errors import FrameError, ProtocolError

HEADS_DIGEST_PREFIX = b"aidmesh/heads/v1\x00"
_HEX64_RE = re.compile(r"^[0-9a-f]{64}\Z")
MAX_FRAME_SIZE = MAX_HEADER_SIZE + SIGNATURE_SIZE + MAX_PAYLOAD_SIZE + 16
PAGE_MAX_ENTRIES = 500
PAGE_MAX_BYTES = 1024 * 1024
PULL_MAX_PAGES = 20  # one /pull response holds at most this many pages
PULL_MAX_BYTES = PULL_MAX_PAGES * PAGE_MAX_BYTES  # ... so a puller stops reading past this
PULL_MAX_FRAMES = PULL_MAX_PAGES * PAGE_MAX_ENTRIES
MAX_STATE_SIZE = 8 * 1024 * 1024  # a state message; a puller stops reading past this


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    id: bytes


Heads = Mapping[bytes, Head]


def encode_heads(heads: Heads) -> bytes:
    """Canonical form: map of author (32-byte bin, as hex string key) to [seq, head id]."""
    return canonical.encode({a.hex(): [h.seq, h.id] for a, h in heads.items()})


def decode_heads(data: bytes, *, max_size: int = 8 * 1024 * 1024) -> dict[bytes, Head]:
    m = canonical.decode(data, max_size=max_size)
    if not isinstance(m, dict):
        raise FrameError("a heads vector is a map", code="bad-heads")
    out: dict[bytes, Head] = {}
    for key, value in m.items():
        if not _HEX64_RE.match(key):
            raise FrameError(f"heads key {key[:70]!r} is not 64 lowercase hex", code="bad-heads")
        author = bytes.fromhex(key)
        if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], int)
                or isinstance(value[0], bool) or value[0] < 1
                or not isinstance(value[1], bytes) or len(value[1]) != 32):
            raise FrameError("a head is [seq >= 1, 32-byte entry id]", code="bad-heads")
        out[author] = Head(value[0], value[1])
    return out


def heads_digest(heads: Heads) -> bytes:
    """SHA-256 over a domain prefix and the canonical heads vector."""
    return hashlib.sha256(HEADS_DIGEST_PREFIX + encode_heads(heads)).digest()


def missing(ours: Heads, theirs: Heads) -> dict[bytes, int]:
    """Authors where ``theirs`` is ahead: author -> our current seq (pull after it)."""
    out = {}
    for author, head in theirs.items():
        mine = ours.get(author)
        have = mine.seq if mine else 0
        if head.seq > have:
            out[author] = have
    return out


def encode_frame(raw_header: bytes, payload: bytes | None) -> bytes:
    """One stream frame: the canonical msgpack array [signed header, payload or nil]."""
    return canonical.encode([raw_header, payload])


class FrameDecoder:
    """Incremental decoder for a stream of frames (one HTTP page body).

    Each frame must be the canonical encoding of its value, checked on the exact bytes
    received, so a relay cannot smuggle alternative encodings through sync.
    """

    def __init__(self) -> None:
        self._unpacker = msgpack.Unpacker(
            raw=False, use_list=True, max_buffer_size=PAGE_MAX_BYTES + 2 * MAX_FRAME_SIZE,
            max_bin_len=MAX_FRAME_SIZE, max_str_len=0, max_array_len=2, max_map_len=0,
            max_ext_len=0,
        )
        self._buffer = bytearray()
        self._offset = 0  # stream offset of self._buffer[0]
        self._fed = 0

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes | None]]:
        self._buffer += data
        self._fed += len(data)
        try:
            self._unpacker.feed(data)
            for value in self._unpacker:
                end = self._unpacker.tell()
                exact = bytes(self._buffer[: end - self._offset])
                del self._buffer[: end - self._offset]
                self._offset = end
                yield _check_frame(value, exact)
        except ProtocolError:
            raise
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise FrameError(f"stream is not a sequence of frames ({exc})") from None

    def close(self) -> None:
        """Call at end of stream: a partial trailing frame means the page was cut."""
        if self._offset != self._fed:
            raise FrameError("stream ends inside a frame", code="truncated")


def _check_frame(value: object, exact: bytes) -> tuple[bytes, bytes | None]:
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], bytes)
            or not (value[1] is None or isinstance(value[1], bytes))):
        raise FrameError("a frame is [signed header bin, payload bin or nil]")
    if len(value[0]) > MAX_HEADER_SIZE + SIGNATURE_SIZE:
        raise FrameError("frame header is over the size limit", code="header-too-large")
    if value[1] is not None and len(value[1]) > MAX_PAYLOAD_SIZE:
        raise FrameError("frame payload is over the size limit", code="payload-too-large")
    if encode_frame(value[0], value[1]) != exact:
        raise FrameError("frame is not canonically encoded", code="non-canonical")
    return value[0], value[1]


def decode_frames(data: bytes) -> list[tuple[bytes, bytes | None]]:
    decoder = FrameDecoder()
    frames = list(decoder.feed(data))
    decoder.close()
    return frames


# -- federation round messages -------------------------------------------------------------

STATE_DIGEST_PREFIX = b"aidmesh/state/v1\x00"
MAX_WANT = 10_000  # the canonical container limit bounds a pull request
HEADS_CHUNK = 10_000


def encode_state(heads: Heads, forks: list[bytes]) -> bytes:
    """What a node serves a peer: heads vector plus the fork proofs it holds.

    The heads go in chunks of HEADS_CHUNK authors (every chunk full but the last, keys
    ascending across chunks) so a node may hold more logs than one msgpack map allows.
    """
    items = sorted((a.hex(), [h.seq, h.id]) for a, h in heads.items())
    chunks = [dict(items[i:i + HEADS_CHUNK]) for i in range(0, len(items), HEADS_CHUNK)]
    return canonical.encode({"heads": chunks, "forks": sorted(set(forks))})


def decode_state(data: bytes, *, max_size: int = MAX_STATE_SIZE
                 ) -> tuple[dict[bytes, Head], list[bytes]]:
    m = canonical.decode(data, max_size=max_size)
    if not isinstance(m, dict) or set(m) != {"heads", "forks"}:
        raise FrameError("a state message is a map with keys 'heads' and 'forks'",
                         code="bad-state")
    forks = m["forks"]
    if not isinstance(forks, list) or not all(isinstance(f, bytes) for f in forks):
        raise FrameError("state 'forks' is an array of fork proofs (bin)", code="bad-state")
    if forks != sorted(set(forks)):
        raise FrameError("state 'forks' must be sorted bytewise without repeats",
                         code="non-canonical")
    chunks = m["heads"]
    if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
        raise FrameError("state 'heads' is an array of heads maps", code="bad-state")
    heads: dict[bytes, Head] = {}
    last = ""
    for i, chunk in enumerate(chunks):
        if not chunk or (i < len(chunks) - 1 and len(chunk) != HEADS_CHUNK):
            raise FrameError(f"every heads chunk but the last holds exactly {HEADS_CHUNK} "
                             "authors", code="non-canonical")
        if min(chunk) <= last:
            raise FrameError("heads chunks must be in ascending author order",
                             code="non-canonical")
        last = max(chunk)
        heads.update(decode_heads(canonical.encode(chunk)))
    return heads, forks


def state_digest(state: bytes) -> bytes:
    """Digest of an encoded state message; equal digests mean nothing to pull."""
    return hashlib.sha256(STATE_DIGEST_PREFIX + state).digest()


def encode_want(want: Mapping[bytes, int]) -> bytes:
    """A pull request: for each author, the seq the puller already has.

    At most MAX_WANT authors; pullers split larger wants.
    """
    return canonical.encode({"want": {a.hex(): after for a, after in want.items()}})


def decode_want(data: bytes) -> dict[bytes, int]:
    m = canonical.decode(data, max_size=1024 * 1024)
    if not isinstance(m, dict) or set(m) != {"want"} or not isinstance(m["want"], dict):
        raise FrameError("a pull request is a map {want: {author hex: after seq}}",
                         code="bad-want")
    out = {}
    for key, after in m["want"].items():
        if not _HEX64_RE.match(key):
            raise FrameError("want keys are 64 lowercase hex digits", code="bad-want")
        author = bytes.fromhex(key)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise FrameError("want values are seq numbers >= 0", code="bad-want")
        out[author] = after
    return out


# -- payload requests ------------------------------------------------------------------------

MAX_PAYLOAD_IDS = 500  # entry ids in one payload request; the answer is one page
MAX_PAYLOAD_REQUEST_SIZE = 32 * 1024


def encode_payload_request(ids: Iterable[bytes]) -> bytes:
    """A payload request: the entry ids whose payloads the caller lacks, sorted, unique."""
    return canonical.encode({"ids": sorted(set(ids))})


def decode_payload_request(data: bytes) -> list[bytes]:
    m = canonical.decode(data, max_size=MAX_PAYLOAD_REQUEST_SIZE)
    if not isinstance(m, dict) or set(m) != {"ids"} or not isinstance(m["ids"], list):
        raise FrameError("a payload request is a map {ids: [entry id, ...]}",
                         code="bad-payload-request")
    ids = m["ids"]
    if not 1 <= len(ids) <= MAX_PAYLOAD_IDS:
        raise FrameError(f"a payload request names 1 to {MAX_PAYLOAD_IDS} entry ids",
                         code="bad-payload-request")
    if not all(isinstance(i, bytes) and len(i) == 32 for i in ids):
        raise FrameError("payload request ids are 32-byte bin entry ids",
                         code="bad-payload-request")
    if any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        raise FrameError("payload request ids must be sorted bytewise without repeats",
                         code="non-canonical")
    return ids
