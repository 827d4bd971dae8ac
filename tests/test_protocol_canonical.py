"""Canonical msgpack: the one byte form every signature and hash covers."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import canonical
from protocol.canonical import MAX_CONTAINER_LEN, MAX_DEPTH, decode, encode
from protocol.errors import EncodingError, ProtocolError

SETTINGS = settings(max_examples=150, deadline=None)

# -- strategies -------------------------------------------------------------------------

ints = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-300, 300),
    st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -32, -33,
                     -128, -129, -32768, -32769, -(2**31), -(2**31) - 1]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, st.text(max_size=40),
                    st.binary(max_size=40))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
    ),
    max_leaves=30,
)


def code_of(data: bytes) -> str:
    with pytest.raises(EncodingError) as info:
        decode(data)
    return info.value.code


# -- round trip -------------------------------------------------------------------------

@SETTINGS
@given(values)
def test_round_trip(value):
    data = encode(value)
    back = decode(data)
    assert back == value
    assert encode(back) == data  # one byte form, also for bool-vs-int and nesting


@SETTINGS
@given(st.dictionaries(st.text(max_size=8), st.integers(0, 9), min_size=2, max_size=8),
       st.randoms(use_true_random=False))
def test_map_key_order_does_not_matter(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    assert encode(dict(items)) == encode(d)
    keys = [k.encode() for k in decode(encode(d))]
    assert keys == sorted(keys)


def test_keys_sorted_by_utf8_bytes():
    # "é" (c3 a9) sorts after "z" (7a) by bytes; "Z" before "a".
    data = encode({"é": 1, "z": 2, "a": 3, "Z": 4})
    assert list(decode(data)) == ["Z", "a", "z", "é"]


def test_bytes_use_bin_and_str_use_str():
    assert encode(b"ab") == b"\xc4\x02ab"
    assert encode("ab") == b"\xa2ab"


def test_tuple_encodes_as_array():
    assert encode((1, 2)) == encode([1, 2])


# -- non-canonical forms ----------------------------------------------------------------

INT_FORMS = [(0xCC, ">B"), (0xCD, ">H"), (0xCE, ">I"), (0xCF, ">Q"),
             (0xD0, ">b"), (0xD1, ">h"), (0xD2, ">i"), (0xD3, ">q")]


def int_forms(v: int) -> list[bytes]:
    """Every msgpack encoding of integer ``v`` (fixint forms included)."""
    out = []
    if 0 <= v <= 127 or -32 <= v < 0:
        out.append(struct.pack(">b", v) if v < 0 else bytes([v]))
    for tag, fmt in INT_FORMS:
        try:
            out.append(bytes([tag]) + struct.pack(fmt, v))
        except struct.error:
            pass
    return out


@SETTINGS
@given(ints)
def test_wider_int_forms_rejected(v):
    canonical_form = encode(v)
    forms = int_forms(v)
    assert canonical_form in forms
    for form in forms:
        if form == canonical_form:
            assert decode(form) == v
        else:
            assert code_of(form) == "non-canonical", form.hex()
            # and also when nested inside a container
            assert code_of(b"\x91" + form) == "non-canonical"
            assert code_of(b"\x81\xa1k" + form) == "non-canonical"


@pytest.mark.parametrize("data", [
    b"\xcd\x00\x05",              # uint16 for 5
    b"\xcc\x05",                  # uint8 for 5
    b"\xd0\x05",                  # int8 for positive 5
    b"\xd3\xff\xff\xff\xff\xff\xff\xff\xff",  # int64 for -1
    b"\xd9\x01a",                 # str8 for a 1-char string
    b"\xda\x00\x01a",             # str16 for a 1-char string
    b"\xc5\x00\x01a",             # bin16 for 1 byte
    b"\xdc\x00\x01\x01",          # array16 for 1 item
    b"\xde\x00\x01\xa1a\x01",     # map16 for 1 pair
    b"\x82\xa1b\x01\xa1a\x02",    # unsorted keys
    b"\x82\xa1a\x01\xa1a\x02",    # duplicate keys
    b"\x82\xa1a\x01\xa1a\x01",    # duplicate keys, same value
])
def test_non_canonical_examples(data):
    assert code_of(data) == "non-canonical"


def str_forms(s: str) -> list[bytes]:
    b = s.encode()
    out = []
    if len(b) < 32:
        out.append(bytes([0xA0 | len(b)]) + b)
    if len(b) < 256:
        out.append(b"\xd9" + struct.pack(">B", len(b)) + b)
    out.append(b"\xda" + struct.pack(">H", len(b)) + b)
    out.append(b"\xdb" + struct.pack(">I", len(b)) + b)
    return out


@SETTINGS
@given(st.text(max_size=40))
def test_wider_str_forms_rejected(s):
    canonical_form = encode(s)
    for form in str_forms(s):
        if form == canonical_form:
            assert decode(form) == s
        else:
            assert code_of(form) == "non-canonical"


@SETTINGS
@given(st.dictionaries(st.text(max_size=6), st.integers(-5, 5), min_size=2, max_size=6),
       st.randoms(use_true_random=False))
def test_unsorted_maps_rejected(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    raw = msgpack.packb(dict(items), use_bin_type=True)  # insertion order
    if raw == encode(d):
        assert decode(raw) == d
    else:
        assert code_of(raw) == "non-canonical"


@SETTINGS
@given(st.text(max_size=6), st.integers(-5, 5), st.integers(-5, 5))
def test_duplicate_keys_rejected(k, a, b):
    kb = encode(k)
    raw = b"\x82" + kb + encode(a) + kb + encode(b)
    assert code_of(raw) == "non-canonical"


# -- structural rules and error codes ---------------------------------------------------

@SETTINGS
@given(values, st.binary(min_size=1, max_size=20))
def test_trailing_bytes(value, extra):
    assert code_of(encode(value) + extra) == "trailing-bytes"


@pytest.mark.parametrize("data", [
    b"\xc7\x00\x05",                  # ext8, empty body
    b"\xd4\x05\x00",                  # fixext1
    b"\xd5\x05\x00\x00",              # fixext2
    b"\xd6\xff\x00\x00\x00\x00",      # fixext4, type -1 (msgpack timestamp)
    b"\xd7\x01" + bytes(8),           # fixext8
    b"\xd8\x01" + bytes(16),          # fixext16
    b"\xc7\x03\x01abc",               # ext8
    b"\x91\xd4\x05\x00",              # nested
])
def test_ext_types_code(data):
    assert code_of(data) == "ext-type"


def nested_arrays(n: int) -> bytes:
    return b"\x91" * (n - 1) + b"\x90"


def test_depth_limit():
    ok = nested_arrays(MAX_DEPTH)
    assert encode(decode(ok)) == ok
    assert code_of(nested_arrays(MAX_DEPTH + 1)) == "too-deep"
    # maps count as levels too
    assert code_of(b"\x81\xa1k" * MAX_DEPTH + b"\x90") == "too-deep"
    value: list = []
    for _ in range(MAX_DEPTH):
        value = [value]
    with pytest.raises(EncodingError) as info:
        encode(value)
    assert info.value.code == "too-deep"


def test_very_deep_input_is_an_encoding_error():
    with pytest.raises(EncodingError):
        decode(nested_arrays(100_000))


@pytest.mark.parametrize("data", [
    b"\xca\x3f\x80\x00\x00",                 # float32 1.0
    b"\xcb" + struct.pack(">d", 0.5),         # float64
    b"\x91\xcb" + struct.pack(">d", 2.0),     # nested float
])
def test_floats_rejected_on_decode(data):
    assert code_of(data) == "float"


@pytest.mark.parametrize("value", [1.5, [0.0], {"a": float("nan")}])
def test_floats_rejected_on_encode(value):
    with pytest.raises(EncodingError) as info:
        encode(value)
    assert info.value.code == "float"


def test_container_limits_on_encode():
    for value in ([0] * (MAX_CONTAINER_LEN + 1),
                  {str(i): 0 for i in range(MAX_CONTAINER_LEN + 1)}):
        with pytest.raises(EncodingError) as info:
            encode(value)
        assert info.value.code == "too-long"
    assert len(decode(encode([0] * MAX_CONTAINER_LEN))) == MAX_CONTAINER_LEN


def test_container_limits_on_decode():
    n = MAX_CONTAINER_LEN + 1
    assert code_of(b"\xdc" + struct.pack(">H", n) + b"\x00" * n) == "too-long"
    assert code_of(b"\xde" + struct.pack(">H", n) + b"\xa0\x00" * n) == "too-long"


def test_bad_map_key():
    with pytest.raises(EncodingError) as info:
        encode({1: "x"})
    assert info.value.code == "bad-map-key"
    assert code_of(b"\x81\xc4\x01a\x01") == "bad-map-key"  # bin key
    assert code_of(b"\x81\x01\x02") == "bad-map-key"      # int key
    assert code_of(b"\x81\x90\x02") == "bad-map-key"      # array key


@pytest.mark.parametrize("data", [
    b"",                  # empty
    b"\xc1",              # never-used byte
    b"\x92\x01",          # truncated array
    b"\xa2a",             # truncated string
    b"\xa1\xff",          # invalid utf-8
])
def test_malformed(data):
    assert code_of(data) == "malformed"


def test_non_bytes_and_bad_values():
    with pytest.raises(EncodingError) as info:
        decode("not bytes")  # type: ignore[arg-type]
    assert info.value.code == "malformed"
    for bad in (2**64, -(2**63) - 1, object(), {1, 2}):
        with pytest.raises(EncodingError) as info:
            encode(bad)
        assert info.value.code == "malformed"


def test_max_size():
    data = encode("x" * 100)
    assert decode(data, max_size=len(data)) == "x" * 100
    with pytest.raises(EncodingError) as info:
        decode(data, max_size=len(data) - 1)
    assert info.value.code == "too-large"


def test_accepts_bytearray_and_memoryview():
    data = encode({"a": [1, b"x"]})
    assert decode(bytearray(data)) == decode(memoryview(data)) == {"a": [1, b"x"]}


def test_errors_are_protocol_errors_with_codes():
    with pytest.raises(ProtocolError) as info:
        decode(b"\xc1")
    assert str(info.value).startswith("malformed: ")
    assert info.value.detail
    assert isinstance(info.value, ValueError)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_errors(data):
    try:
        value = canonical.decode(data)
    except ProtocolError:
        return
    assert encode(value) == data
