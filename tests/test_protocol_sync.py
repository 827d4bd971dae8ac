"""Sync messages (heads vectors, digests, frame streams) and hostile wire input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import canonical, seal
from protocol.entry import (
    MAX_HEADER_SIZE,
    MAX_PAYLOAD_SIZE,
    SIGNATURE_SIZE,
    create_entry,
    decode_header,
    verify_entry,
    verify_run,
)
from protocol.errors import FrameError, ProtocolError
from protocol.fork import decode_fork_proof, make_fork_proof
from protocol.identity import Identity
from protocol.sync import (
    HEADS_CHUNK,
    MAX_WANT,
    PAGE_MAX_BYTES,
    PAGE_MAX_ENTRIES,
    FrameDecoder,
    Head,
    decode_frames,
    decode_heads,
    decode_state,
    decode_want,
    encode_frame,
    encode_heads,
    encode_state,
    encode_want,
    heads_digest,
    missing,
    state_digest,
)

SETTINGS = settings(max_examples=150, deadline=None)

ALICE = Identity.from_secret(b"\x01" * 32)
BOB = Identity.from_secret(b"\x02" * 32)
OFFER = {"title": "Rides to the clinic", "action": "deliverService",
         "category": "transport/ride", "area": "861f1d4a7ffffff"}
TS = 1_763_700_000_000

# -- heads ------------------------------------------------------------------------------

AUTHORS = [bytes([i]) * 32 for i in range(8)]
heads_st = st.dictionaries(
    st.sampled_from(AUTHORS) | st.binary(min_size=32, max_size=32),
    st.builds(Head, st.integers(1, 2**53 - 1), st.binary(min_size=32, max_size=32)),
    max_size=10,
)


@SETTINGS
@given(heads_st)
def test_heads_round_trip(heads):
    data = encode_heads(heads)
    assert decode_heads(data) == heads
    assert canonical.decode(data) == {a.hex(): [h.seq, h.id] for a, h in heads.items()}
    assert heads_digest(decode_heads(data)) == heads_digest(heads)
    assert len(heads_digest(heads)) == 32
    # insertion order does not change the bytes or the digest
    reordered = dict(reversed(list(heads.items())))
    assert encode_heads(reordered) == data
    assert heads_digest(reordered) == heads_digest(heads)


@SETTINGS
@given(heads_st, heads_st)
def test_heads_digest_distinguishes(h1, h2):
    assert (heads_digest(h1) == heads_digest(h2)) == (h1 == h2)


def test_empty_heads():
    assert decode_heads(encode_heads({})) == {}


@pytest.mark.parametrize("value", [
    [],                                        # not a map
    {"ab": [1, b"\x00" * 32]},                 # short key
    {"AB" * 32: [1, b"\x00" * 32]},            # uppercase key
    {"zz" * 32: [1, b"\x00" * 32]},            # non-hex key
    {"ab" * 32: [0, b"\x00" * 32]},            # seq 0
    {"ab" * 32: [True, b"\x00" * 32]},         # bool seq
    {"ab" * 32: ["1", b"\x00" * 32]},          # text seq
    {"ab" * 32: [1, b"\x00" * 31]},            # short id
    {"ab" * 32: [1, "00" * 32]},               # id as text
    {"ab" * 32: [1, b"\x00" * 32, 3]},         # three items
    {"ab" * 32: {"seq": 1}},                   # a map
])
def test_bad_heads(value):
    with pytest.raises(FrameError) as info:
        decode_heads(canonical.encode(value))
    assert info.value.code == "bad-heads"


def test_heads_key_with_whitespace_rejected():
    with pytest.raises(FrameError):
        decode_heads(canonical.encode({"00" * 31 + "  ": [1, b"\x00" * 32]}))


def test_heads_non_canonical_and_size():
    with pytest.raises(ProtocolError) as info:
        decode_heads(b"\x81\xda\x00\x40" + b"a" * 64 + b"\x92\x01\xc4\x20" + bytes(32))
    assert info.value.code == "non-canonical"
    with pytest.raises(ProtocolError) as info:
        decode_heads(encode_heads({AUTHORS[0]: Head(1, bytes(32))}), max_size=10)
    assert info.value.code == "too-large"


@SETTINGS
@given(heads_st, heads_st)
def test_missing(ours, theirs):
    need = missing(ours, theirs)
    for author, head in theirs.items():
        have = ours[author].seq if author in ours else 0
        if head.seq > have:
            assert need[author] == have  # pull everything after our seq
        else:
            assert author not in need
    assert set(need) <= set(theirs)
    # after pulling, nothing is missing any more; and nothing is missing from ourselves
    pulled = {**ours, **{a: theirs[a] for a in need}}
    assert missing(pulled, theirs) == {}
    assert missing(ours, ours) == {}


def test_missing_example():
    a, b, c = AUTHORS[:3]
    ours = {a: Head(5, b"\x01" * 32), b: Head(3, b"\x02" * 32)}
    theirs = {a: Head(7, b"\x03" * 32), b: Head(2, b"\x04" * 32), c: Head(1, b"\x05" * 32)}
    assert missing(ours, theirs) == {a: 5, c: 0}


# -- state and want messages ------------------------------------------------------------

forks_st = st.lists(st.binary(min_size=1, max_size=300), max_size=4)


@SETTINGS
@given(heads_st, forks_st)
def test_state_round_trip(heads, forks):
    data = encode_state(heads, forks)
    got_heads, got_forks = decode_state(data)
    assert got_heads == heads
    assert got_forks == sorted(set(forks))
    assert encode_state(got_heads, got_forks) == data
    assert encode_state(dict(reversed(list(heads.items()))), list(reversed(forks))) == data
    assert len(state_digest(data)) == 32
    assert state_digest(data) == state_digest(encode_state(heads, sorted(forks)))


@SETTINGS
@given(heads_st, forks_st, heads_st, forks_st)
def test_state_digest_distinguishes(h1, f1, h2, f2):
    same = h1 == h2 and sorted(set(f1)) == sorted(set(f2))
    assert (state_digest(encode_state(h1, f1)) == state_digest(encode_state(h2, f2))) == same


GOOD_HEADS = [{"ab" * 32: [1, b"\x00" * 32]}]


@pytest.mark.parametrize("value, expected", [
    ([], "bad-state"),
    ({"heads": GOOD_HEADS}, "bad-state"),
    ({"forks": []}, "bad-state"),
    ({"heads": GOOD_HEADS, "forks": [], "x": 1}, "bad-state"),
    ({"heads": GOOD_HEADS, "forks": b"\x00"}, "bad-state"),
    ({"heads": GOOD_HEADS, "forks": ["text"]}, "bad-state"),
    ({"heads": {}, "forks": []}, "bad-state"),
    ({"heads": [[]], "forks": []}, "bad-state"),
    ({"heads": [{}], "forks": []}, "non-canonical"),
    ({"heads": [{"AB" * 32: [1, b"\x00" * 32]}], "forks": []}, "bad-heads"),
])
def test_bad_state(value, expected):
    with pytest.raises(FrameError) as info:
        decode_state(canonical.encode(value))
    assert info.value.code == expected


def test_state_size_limit():
    data = encode_state({AUTHORS[0]: Head(1, bytes(32))}, [])
    with pytest.raises(ProtocolError) as info:
        decode_state(data, max_size=len(data) - 1)
    assert info.value.code == "too-large"


@SETTINGS
@given(st.dictionaries(st.sampled_from(AUTHORS) | st.binary(min_size=32, max_size=32),
                       st.integers(0, 2**53), max_size=12))
def test_want_round_trip(want):
    assert decode_want(encode_want(want)) == want


@pytest.mark.parametrize("value", [
    [],
    {},
    {"want": []},
    {"want": {}, "x": 1},
    {"want": {"ab": 1}},
    {"want": {"AB" * 32: 1}},
    {"want": {"ab" * 31 + "a ": 1}},
    {"want": {"ab" * 32: -1}},
    {"want": {"ab" * 32: True}},
    {"want": {"ab" * 32: "1"}},
])
def test_bad_want(value):
    with pytest.raises(FrameError) as info:
        decode_want(canonical.encode(value))
    assert info.value.code == "bad-want"


def test_want_at_limit_and_too_large():
    want = {i.to_bytes(32, "big"): 0 for i in range(MAX_WANT)}
    assert len(decode_want(encode_want(want))) == MAX_WANT
    with pytest.raises(ProtocolError) as info:
        decode_want(b"\xc4\x00" * (512 * 1024 + 1))
    assert info.value.code == "too-large"
    # one author more cannot even be encoded canonically (MAX_WANT is the container limit)
    n = MAX_WANT + 1
    raw = b"\x81\xa4want\xde" + n.to_bytes(2, "big") + b"".join(
        b"\xd9\x40" + f"{i:064x}".encode() + b"\x00" for i in range(n))
    with pytest.raises(ProtocolError) as info:
        decode_want(raw)
    assert info.value.code in ("too-long", "bad-want")


# -- frames -----------------------------------------------------------------------------

frames_st = st.lists(
    st.tuples(st.binary(min_size=1, max_size=MAX_HEADER_SIZE + SIGNATURE_SIZE),
              st.none() | st.binary(max_size=2000)),
    max_size=12,
)


def chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)] if sizes else len(data)
        out.append(data[i:i + n])
        i += n
        k += 1
    return out


@SETTINGS
@given(frames_st, st.lists(st.integers(1, 700), min_size=1, max_size=20))
def test_frame_decoder_any_chunking(frames, sizes):
    stream = b"".join(encode_frame(h, p) for h, p in frames)
    assert decode_frames(stream) == frames
    dec = FrameDecoder()
    got = []
    for piece in chunks(stream, sizes):
        got.extend(dec.feed(piece))
    dec.close()
    assert got == frames


@SETTINGS
@given(frames_st.filter(bool), st.data())
def test_truncated_streams(frames, data):
    encoded = [encode_frame(h, p) for h, p in frames]
    stream = b"".join(encoded)
    boundaries = {0}
    pos = 0
    for e in encoded:
        pos += len(e)
        boundaries.add(pos)
    cut = data.draw(st.integers(0, len(stream) - 1))
    if cut in boundaries:
        whole = sorted(boundaries).index(cut)  # frames that fit before the cut
        assert decode_frames(stream[:cut]) == frames[:whole]
        return
    with pytest.raises(FrameError) as info:
        decode_frames(stream[:cut])
    assert info.value.code == "truncated"
    # the same when the stream arrives in pieces: whole frames come out, then close fails
    dec = FrameDecoder()
    got = []
    for piece in chunks(stream[:cut], [7]):
        got.extend(dec.feed(piece))
    assert got == frames[:len([b for b in boundaries if 0 < b < cut])]
    with pytest.raises(FrameError) as info:
        dec.close()
    assert info.value.code == "truncated"


def test_real_entries_through_frames():
    prev = None
    entries = []
    for i in range(5):
        prev = create_entry(ALICE, "offer", {**OFFER, "title": f"ride {i}"}, previous=prev,
                            timestamp=TS + i)
        entries.append(prev)
    page = b"".join(encode_frame(e.raw, None if i == 2 else e.payload)
                    for i, e in enumerate(entries))
    frames = decode_frames(page)
    assert [e.id for e in verify_run(frames)] == [e.id for e in entries]


def big_page() -> bytes:
    prev = None
    frames = []
    for i in range(PAGE_MAX_ENTRIES):
        prev = create_entry(ALICE, "offer", {**OFFER, "description": "x" * 1000,
                                             "title": f"ride {i}"},
                            previous=prev, timestamp=TS + i)
        frames.append(encode_frame(prev.raw, prev.payload))
    page = b"".join(frames)
    assert len(page) <= PAGE_MAX_BYTES
    return page


def test_full_page_in_one_piece():
    page = big_page()
    assert len(decode_frames(page)) == PAGE_MAX_ENTRIES


def test_full_page_in_small_pieces():
    page = big_page()
    dec = FrameDecoder()
    n = 0
    for piece in chunks(page, [65536]):
        n += len(list(dec.feed(piece)))
    dec.close()
    assert n == PAGE_MAX_ENTRIES


@pytest.mark.parametrize("data, expected", [
    (canonical.encode([b"h"]), "bad-frame"),                 # one item
    (canonical.encode([b"h", b"p", b"x"]), "bad-frame"),     # three items
    (canonical.encode([1, b"p"]), "bad-frame"),              # header not bin
    (canonical.encode([b"h", 5]), "bad-frame"),              # payload not bin/nil
    (canonical.encode([b"h", ""]), "bad-frame"),             # payload empty str
    (canonical.encode([b"h", "text"]), "bad-frame"),         # a str
    (canonical.encode({"h": b"p"}), "bad-frame"),            # a map
    (canonical.encode(b"h"), "bad-frame"),                   # bare bin
    (b"\xc1", "bad-frame"),                                  # reserved byte
    (b"\x92\xd4\x01\x00\xc0", "bad-frame"),                  # ext
    (b"\x92\xc5\x00\x01h\xc0", "non-canonical"),             # bin16 for 1 byte
    (b"\xdc\x00\x02\xc4\x01h\xc0", "non-canonical"),         # array16
    (canonical.encode([bytes(MAX_HEADER_SIZE + SIGNATURE_SIZE + 1), None]),
     "header-too-large"),
    (canonical.encode([b"h", bytes(MAX_PAYLOAD_SIZE + 1)]), "payload-too-large"),
    (canonical.encode([b"h", None])[:-1], "truncated"),
])
def test_frame_error_codes(data, expected):
    with pytest.raises(FrameError) as info:
        decode_frames(data)
    assert info.value.code == expected


def test_good_frames_before_a_bad_one_are_yielded():
    good = encode_frame(b"h", None)
    dec = FrameDecoder()
    got = []
    with pytest.raises(FrameError):
        for f in dec.feed(good + good + b"\xc1"):
            got.append(f)
    assert got == [(b"h", None), (b"h", None)]


# -- hostile input to every decoder ------------------------------------------------------

def _seed_inputs() -> list[bytes]:
    e1 = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    e2 = create_entry(ALICE, "withdraw", {"target": e1.id}, previous=e1, timestamp=TS)
    f1 = create_entry(ALICE, "offer", {**OFFER, "title": "fork"}, timestamp=TS)
    proof = make_fork_proof(e1, f1).encode()
    box = seal.seal(ALICE.seal_private(), BOB.seal_public(), b"Flat 3, ring twice")
    heads = encode_heads({ALICE.public: Head(2, e2.id)})
    frames = encode_frame(e1.raw, e1.payload) + encode_frame(e2.raw, None)
    state = encode_state({ALICE.public: Head(2, e2.id)}, [proof])
    want = encode_want({ALICE.public: 1, BOB.public: 0})
    return [e1.raw, e2.raw, e1.payload, proof, box, heads, frames, state, want]


SEEDS = _seed_inputs()
SEAL_KEY = BOB.seal_private()


def feed_everything(data: bytes) -> None:
    """Every decoder a peer's bytes reach; anything but a ProtocolError fails the test."""
    calls = [
        lambda: canonical.decode(data),
        lambda: decode_header(data),
        lambda: verify_entry(data),
        lambda: verify_entry(data, data),
        lambda: verify_entry(SEEDS[0], data),
        lambda: verify_run([(data, None)]),
        lambda: verify_run([(SEEDS[0], None), (data, data)]),
        lambda: decode_fork_proof(data),
        lambda: decode_heads(data),
        lambda: decode_state(data),
        lambda: decode_want(data),
        lambda: decode_frames(data),
        lambda: seal.open_sealed(SEAL_KEY, data),
        lambda: seal.parties(data),
    ]
    for call in calls:
        try:
            call()
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=700))
def test_random_bytes_only_raise_protocol_errors(data):
    feed_everything(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SEEDS), st.lists(st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate"]), st.integers(0, 2**16),
    st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_valid_input_only_raises_protocol_errors(seed, ops):
    buf = bytearray(seed)
    for op, pos, value in ops:
        i = pos % (len(buf) + 1)
        if op == "flip" and i < len(buf):
            buf[i] ^= value or 1
        elif op == "insert":
            buf.insert(i, value)
        elif op == "delete" and i < len(buf):
            del buf[i]
        elif op == "truncate":
            del buf[i:]
    feed_everything(bytes(buf))


def test_seeds_are_valid():
    e1 = verify_entry(SEEDS[0], SEEDS[2])
    verify_run([(SEEDS[0], SEEDS[2]), (SEEDS[1], None)])
    assert decode_fork_proof(SEEDS[3]).seq == 1
    assert seal.open_sealed(SEAL_KEY, SEEDS[4]) == b"Flat 3, ring twice"
    assert decode_heads(SEEDS[5])[ALICE.public].seq == 2
    assert decode_frames(SEEDS[6])[0] == (e1.raw, e1.payload)
    assert decode_state(SEEDS[7])[1] == [SEEDS[3]]
    assert decode_want(SEEDS[8])[ALICE.public] == 1


def test_state_chunks_heads_beyond_one_map():
    heads = {i.to_bytes(32, "big"): Head(1, b"\x01" * 32) for i in range(HEADS_CHUNK + 5)}
    data = encode_state(heads, [])
    got, forks = decode_state(data)
    assert got == heads and forks == []
    m = canonical.decode(data)
    assert [len(c) for c in m["heads"]] == [HEADS_CHUNK, 5]
    # the same heads split differently are not the canonical form
    items = sorted(m["heads"][0].items()) + sorted(m["heads"][1].items())
    odd = {"heads": [dict(items[:5]), dict(items[5:HEADS_CHUNK + 5])], "forks": []}
    with pytest.raises(FrameError) as err:
        decode_state(canonical.encode(odd))
    assert err.value.code == "non-canonical"
