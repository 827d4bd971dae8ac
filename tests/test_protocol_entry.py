"""Identity, entries (signed header + detached payload) and chained runs."""

from __future__ import annotations

from unittest import mock

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import protocol.entry as entry_mod
from protocol import canonical, identity
from protocol.entry import (
    MAX_HEADER_SIZE,
    MAX_PAYLOAD_SIZE,
    SIGNATURE_SIZE,
    SIGNING_PREFIX,
    Entry,
    check_payload,
    create_entry,
    decode_header,
    verify_entry,
    verify_run,
)
from protocol.errors import (
    ChainError,
    EncodingError,
    ForkProofError,
    HeaderError,
    IdentityError,
    PayloadError,
    ProtocolError,
    SignatureError,
)
from protocol.fork import decode_fork_proof, make_fork_proof
from protocol.identity import Identity, node_id, parse_entry_id, parse_node_id, sha256
from protocol.kinds import KINDS

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Deterministic identities keep hypothesis examples reproducible.
IDS = [Identity.from_secret(bytes([i + 1]) * 32) for i in range(4)]
ALICE, BOB = IDS[0], IDS[1]
OFFER = {"title": "20 loaves of bread", "action": "transfer", "category": "food/bread",
         "quantity": {"value": "20", "unit": "loaf"}, "area": "881f1d4a91fffff"}
TS = 1_763_700_000_000


# -- local helpers ----------------------------------------------------------------------

def sign_map(ident: Identity, m: dict) -> bytes:
    """Sign an arbitrary header map (used to build headers that break one rule)."""
    hb = canonical.encode(m)
    return hb + ident.sign(SIGNING_PREFIX + hb)


def header_map(ident: Identity = ALICE, *, seq: int = 1, back: bytes | None = None,
               ts: int = TS, kind: str = "offer", payload: bytes | None = None) -> dict:
    payload = canonical.encode(OFFER) if payload is None else payload
    m = {"v": 1, "author": ident.public, "seq": seq, "ts": ts, "kind": kind,
         "phash": sha256(payload), "psize": len(payload)}
    if back is not None:
        m["back"] = back
    return m


def chain(ident: Identity, items: list[tuple[str, object]], *, ts: int = TS,
          previous: Entry | None = None) -> list[Entry]:
    out = []
    prev = previous
    for i, (kind, content) in enumerate(items):
        prev = create_entry(ident, kind, content, previous=prev, timestamp=ts + i)
        out.append(prev)
    return out


def run_items(entries: list[Entry], with_payload: bool = True):
    return [(e.raw, e.payload if with_payload else None) for e in entries]


def code(exc_type, fn, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    return info.value.code


# -- strategies: kinds and valid payload contents --------------------------------------

CELLS = ["8001fffffffffff", "821c07fffffffff", "851f1d4bfffffff", "881f1d4a91fffff"]
decimals = st.builds(
    lambda i, f: str(i) + ("" if f is None else "." + f),
    st.integers(0, 10**6), st.none() | st.from_regex(r"[0-9]{0,2}[1-9]", fullmatch=True),
).filter(lambda s: s != "0")
quantities = st.fixed_dictionaries({"value": decimals, "unit": st.text(min_size=1, max_size=32)})
languages = st.sampled_from(["en", "es", "pt-BR", "fr-CA", "uk", "ar"])
bin32 = st.binary(min_size=32, max_size=32)
times = st.integers(0, 2**45)


def fix_window(d: dict) -> dict:
    a, b = d.get("available_from"), d.get("available_until")
    if a is not None and b is not None and b < a:
        d["available_from"], d["available_until"] = b, a
    return d


LISTING_OPTIONAL = {
    "description": st.text(max_size=300),
    "quantity": quantities,
    "area": st.sampled_from(CELLS),
    "available_from": times,
    "available_until": times,
    "tags": st.lists(st.text(min_size=1, max_size=40), max_size=5, unique=True),
    "language": languages,
}
LISTING_REQUIRED = {
    "title": st.text(min_size=1, max_size=80),
    "action": st.sampled_from(["transfer", "deliverService", "lend", "use"]),
    "category": st.sampled_from(["food", "food/bread", "tools/hand", "housing/shelter",
                                 "my-group/special-thing"]),
}
offers = st.fixed_dictionaries(LISTING_REQUIRED, optional=LISTING_OPTIONAL).map(fix_window)
needs = st.fixed_dictionaries(
    LISTING_REQUIRED,
    optional={**LISTING_OPTIONAL,
              "urgency": st.sampled_from(["low", "normal", "high", "critical"]),
              "radius_km": st.integers(0, 1000)},
).map(fix_window)
opt_text = st.text(max_size=100)
PAYLOADS = {
    "profile": st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=100)},
        optional={"about": opt_text, "area": st.sampled_from(CELLS),
                  "languages": st.lists(languages, max_size=3, unique=True),
                  "seal_key": bin32}),
    "offer": offers,
    "need": needs,
    "update": st.fixed_dictionaries({
        "target": bin32,
        "set": st.fixed_dictionaries({}, optional={
            "title": st.text(min_size=1, max_size=50), "urgency": st.just("high"),
            "quantity": quantities, "description": opt_text,
        }).filter(bool).map(fix_window),
    }),
    "withdraw": st.fixed_dictionaries({"target": bin32}, optional={"reason": opt_text}),
    "claim": st.fixed_dictionaries({"target": bin32, "target_author": bin32},
                                   optional={"quantity": quantities, "message": opt_text,
                                             "sealed": st.binary(max_size=200)}),
    "accept": st.fixed_dictionaries({"target": bin32, "claim": bin32, "claim_author": bin32},
                                    optional={"quantity": quantities,
                                              "sealed": st.binary(max_size=200)}),
    "decline": st.fixed_dictionaries({"target": bin32, "claim": bin32, "claim_author": bin32},
                                     optional={"reason": opt_text}),
    "fulfil": st.fixed_dictionaries({"target": bin32, "claim": bin32, "claim_author": bin32},
                                    optional={"quantity": quantities}),
    "trust": st.fixed_dictionaries({
        "peer": bin32,
        "url": st.from_regex(r"https?://[a-z0-9.-]{1,30}(:[0-9]{2,5})?(/[a-z0-9/]{0,20})?",
                             fullmatch=True)}),
    "untrust": st.fixed_dictionaries({"peer": bin32}),
    "redact": st.fixed_dictionaries({"target": bin32}, optional={"reason": opt_text}),
}
assert set(PAYLOADS) == set(KINDS), "a new kind needs a payload strategy here"

unknown_kinds = st.from_regex(r"[a-z][a-z0-9_.-]{0,31}", fullmatch=True).filter(
    lambda k: k not in KINDS)
any_content = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=30)
    | st.binary(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=15,
)
kind_and_content = st.one_of(
    st.sampled_from(sorted(PAYLOADS)).flatmap(
        lambda k: st.tuples(st.just(k), PAYLOADS[k])),
    st.tuples(unknown_kinds, any_content),
)


# -- identity ---------------------------------------------------------------------------

def test_node_id_round_trip():
    for ident in IDS + [Identity.generate()]:
        text = ident.node_id
        assert text.startswith("am") and len(text) == 66
        assert text == node_id(ident.public)
        assert parse_node_id(text) == ident.public


@SETTINGS
@given(bin32)
def test_node_id_round_trip_any_key(key):
    assert parse_node_id(node_id(key)) == key


@pytest.mark.parametrize("text", [
    "am" + "AB" * 32,             # uppercase
    "AM" + "ab" * 32,             # uppercase prefix
    "ab" * 33,                    # no prefix
    "ed" + "ab" * 32,             # wrong prefix
    "am" + "ab" * 31,             # too short
    "am" + "ab" * 32 + "0",       # too long
    "am" + "zz" * 32,             # not hex
    "am" + "ab" * 31 + "a ",      # space
    " am" + "ab" * 32,
    "",
    "am",
])
def test_node_id_rejects_malformed(text):
    assert code(IdentityError, parse_node_id, text) == "bad-node-id"


@pytest.mark.parametrize("value", [None, 5, b"am" + b"ab" * 32])
def test_node_id_rejects_non_strings(value):
    assert code(IdentityError, parse_node_id, value) == "bad-node-id"


def test_node_id_of_wrong_key_length():
    assert code(IdentityError, node_id, b"\x00" * 31) == "bad-node-id"


def test_entry_id_text():
    e = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    assert parse_entry_id(identity.entry_id_text(e.id)) == e.id
    for bad in ["AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, "am" + "ab" * 32, 7]:
        assert code(IdentityError, parse_entry_id, bad) == "bad-entry-id"


@pytest.mark.parametrize("parse, text", [
    (parse_node_id, "am" + "ab" * 32 + "\n"),
    (parse_entry_id, "ab" * 32 + "\n"),
])
def test_ids_reject_trailing_newline(parse, text):
    with pytest.raises(IdentityError):
        parse(text)


def test_pem_round_trip():
    ident = Identity.generate()
    pem = ident.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = Identity.from_pem(pem)
    assert again.public == ident.public
    assert again.secret == ident.secret
    assert again == ident
    assert again.seal_public() == ident.seal_public()
    msg = b"hello"
    assert identity.verify_signature(ident.public, again.sign(msg), msg)


def test_pem_rejects_garbage_and_other_keys():
    assert code(IdentityError, Identity.from_pem, b"not a pem") == "bad-key"
    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert code(IdentityError, Identity.from_pem, ec) == "bad-key"
    assert code(IdentityError, Identity.from_secret, b"\x01" * 31) == "bad-key"


def test_secret_not_in_repr():
    assert ALICE.secret.hex() not in repr(ALICE)


def test_verify_signature():
    sig = ALICE.sign(b"m")
    assert identity.verify_signature(ALICE.public, sig, b"m")
    assert not identity.verify_signature(BOB.public, sig, b"m")
    assert not identity.verify_signature(ALICE.public, sig, b"n")
    assert not identity.verify_signature(b"\x00" * 31, sig, b"m")


# -- entries: round trip ----------------------------------------------------------------

def test_create_and_verify():
    e = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    assert e.seq == 1 and e.header.backlink is None and e.author == ALICE.public
    assert e.author_id == ALICE.node_id and e.kind == "offer"
    assert e.id == sha256(e.raw)
    assert len(e.signature) == SIGNATURE_SIZE and e.header_bytes + e.signature == e.raw
    v = verify_entry(e.raw, e.payload)
    assert v == e and v.content() == OFFER
    bare = verify_entry(e.raw)
    assert bare.payload is None and bare.content() is None
    assert bare == e.without_payload()
    e2 = create_entry(ALICE, "withdraw", {"target": e.id}, previous=e, timestamp=TS - 5)
    assert e2.seq == 2 and e2.header.backlink == e.id
    assert e2.header.timestamp == TS  # never before the previous entry


def test_create_entry_uses_clock():
    e = create_entry(ALICE, "offer", OFFER)
    assert e.header.timestamp > 1_700_000_000_000


@SETTINGS
@given(st.sampled_from(IDS), kind_and_content, st.integers(0, 2**50))
def test_valid_entries_round_trip(ident, kc, ts):
    kind, content = kc
    e = create_entry(ident, kind, content, timestamp=ts)
    d = decode_header(e.raw)
    assert d.header == e.header and d.id == e.id
    assert d.header_bytes == e.header_bytes
    v = verify_entry(e.raw, e.payload)
    assert v.content() == content
    assert check_payload(d.header, e.payload) == content
    assert verify_run([(e.raw, e.payload)]) == [v]


@SETTINGS
@given(st.sampled_from(IDS), kind_and_content, st.data())
def test_any_single_byte_change_is_rejected(ident, kc, data):
    kind, content = kc
    e = create_entry(ident, kind, content, timestamp=TS)
    hb, sig, payload = e.header_bytes, e.signature, e.payload
    part = data.draw(st.sampled_from(["header", "signature", "payload"]
                                     if payload else ["header", "signature"]))
    buf = bytearray({"header": hb, "signature": sig, "payload": payload}[part])
    i = data.draw(st.integers(0, len(buf) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != buf[i]))
    buf[i] = new
    if part == "header":
        raw, p = bytes(buf) + sig, payload
    elif part == "signature":
        raw, p = hb + bytes(buf), payload
    else:
        raw, p = hb + sig, bytes(buf)
    with pytest.raises(ProtocolError):
        verify_entry(raw, p)
    if part != "payload":  # the header alone is also rejected
        with pytest.raises(ProtocolError):
            verify_entry(raw)


# -- entries: every error code ----------------------------------------------------------

def test_decode_header_error_codes():
    pl = canonical.encode(OFFER)
    good = header_map()
    cases = {
        "bad-header": [
            canonical.encode([1, 2]) + bytes(64),                       # not a map
            sign_map(ALICE, {k: v for k, v in good.items() if k != "kind"}),  # missing
            sign_map(ALICE, {**good, "extra": 1}),                       # unknown field
            sign_map(ALICE, {**good, "author": b"\x01" * 31}),           # short author
            sign_map(ALICE, {**good, "author": "am" + "ab" * 32}),       # author as text
            sign_map(ALICE, {**good, "seq": 0}),                         # seq < 1
            sign_map(ALICE, {**good, "seq": True}),                      # bool seq
            sign_map(ALICE, {**good, "seq": 2**53}),                     # seq too big
            sign_map(ALICE, {**good, "ts": -1}),                         # negative ts
            sign_map(ALICE, {**good, "phash": sha256(pl).hex()}),        # hash as text
            sign_map(ALICE, {**good, "psize": -1}),
            sign_map(ALICE, header_map(seq=2, back=b"\x01" * 31)),       # short backlink
        ],
        "unsupported-version": [sign_map(ALICE, {**good, "v": 2}),
                                sign_map(ALICE, {**good, "v": 0})],
        "bad-backlink": [sign_map(ALICE, header_map(seq=1, back=b"\x01" * 32)),
                         sign_map(ALICE, header_map(seq=2))],
        "bad-kind": [sign_map(ALICE, header_map(kind="Offer")),
                     sign_map(ALICE, {**good, "kind": 5}),
                     sign_map(ALICE, header_map(kind="a" * 33)),
                     sign_map(ALICE, header_map(kind=""))],
        "payload-too-large": [sign_map(ALICE, {**good, "psize": MAX_PAYLOAD_SIZE + 1})],
        "header-too-large": [b"\x00" * (MAX_HEADER_SIZE + SIGNATURE_SIZE + 1)],
        "malformed": [b"", b"\x80" * SIGNATURE_SIZE, b"\xc1" + bytes(64)],
        "non-canonical": [b"\x81\xa1v\xcc\x01" + bytes(64)],
    }
    for expected, raws in cases.items():
        for raw in raws:
            with pytest.raises(ProtocolError) as info:
                decode_header(raw)
            assert info.value.code == expected, (expected, raw[:40])
    assert code(EncodingError, decode_header, "text") == "malformed"


def test_version_must_be_integer_not_bool():
    raw = sign_map(ALICE, {**header_map(), "v": True})
    assert code(HeaderError, decode_header, raw) == "unsupported-version"


def test_bad_signature():
    e = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    forged = e.header_bytes + BOB.sign(SIGNING_PREFIX + e.header_bytes)
    assert code(SignatureError, verify_entry, forged) == "bad-signature"
    # signed without the domain prefix
    raw = e.header_bytes + ALICE.sign(e.header_bytes)
    assert code(SignatureError, verify_entry, raw) == "bad-signature"
    # a header whose author is not a valid curve point
    raw = sign_map(ALICE, {**header_map(), "author": b"\xff" * 32})
    assert code(SignatureError, verify_entry, raw) == "bad-signature"


def test_payload_error_codes():
    e = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    h = e.header
    assert code(PayloadError, check_payload, h, e.payload + b"\x00") == "payload-size-mismatch"
    flipped = bytearray(e.payload)
    flipped[-1] ^= 1
    assert code(PayloadError, check_payload, h, bytes(flipped)) == "payload-hash-mismatch"
    assert code(PayloadError, check_payload, h, "text") == "malformed"
    big = bytes(MAX_PAYLOAD_SIZE + 1)
    assert code(PayloadError, check_payload, h, big) == "payload-too-large"
    for raw_payload, expected in [
        (canonical.encode({"title": "x"}), "payload-missing-field"),
        (canonical.encode({**OFFER, "phone": "555"}), "payload-unknown-field"),
        (canonical.encode({**OFFER, "action": "sell"}), "payload-schema"),
        (canonical.encode({**OFFER, "area": "881f1d4a91fffff0"}), "area-not-h3"),
        (canonical.encode({**OFFER, "area": "8c1f1d4a91a1dff"}), "area-too-precise"),
        (b"\x81\xa5title\xd9\x01x", "non-canonical"),
        (b"\xc1", "malformed"),
    ]:
        raw = sign_map(ALICE, header_map(payload=raw_payload))
        with pytest.raises(ProtocolError) as info:
            verify_entry(raw, raw_payload)
        assert info.value.code == expected
        verify_entry(raw)  # the header alone is fine: the payload is detached


def test_unknown_kind_payload_is_not_schema_checked():
    e = create_entry(ALICE, "x-future.kind", [1, "anything", {"b": b"\x00"}], timestamp=TS)
    assert verify_entry(e.raw, e.payload).content() == [1, "anything", {"b": b"\x00"}]


def test_future_timestamp():
    e = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    verify_entry(e.raw, now_ms=TS - 600_000)
    assert code(HeaderError, verify_entry, e.raw, now_ms=TS - 600_001) == "future-timestamp"
    assert code(HeaderError, verify_entry, e.raw, now_ms=TS - 10,
                max_future_ms=0) == "future-timestamp"
    assert code(HeaderError, verify_run, [(e.raw, None)],
                now_ms=TS - 600_001) == "future-timestamp"


def test_create_entry_error_codes():
    assert code(PayloadError, create_entry, ALICE, "Offer!", OFFER) == "bad-kind"
    assert code(PayloadError, create_entry, ALICE, "offer", {"title": "x"}) == \
        "payload-missing-field"
    assert code(PayloadError, create_entry, ALICE, "blob", "x" * MAX_PAYLOAD_SIZE) == \
        "payload-too-large"
    first = create_entry(BOB, "offer", OFFER, timestamp=TS)
    assert code(ChainError, create_entry, ALICE, "offer", OFFER, previous=first) == \
        "author-mismatch"
    with pytest.raises(EncodingError):
        create_entry(ALICE, "blob", {"x": 1.5})


# -- chained runs ------------------------------------------------------------------------

def counting_verifies():
    """Count real Ed25519 verifications made through protocol.entry (not a fake)."""
    return mock.patch.object(entry_mod, "verify_signature", wraps=identity.verify_signature)


@SETTINGS
@given(st.sampled_from(IDS), st.lists(kind_and_content, min_size=1, max_size=30),
       st.lists(st.booleans(), min_size=30, max_size=30))
def test_random_chains_verify_with_one_signature(ident, items, erased):
    entries = chain(ident, items)
    run = [(e.raw, None if erased[i] else e.payload) for i, e in enumerate(entries)]
    with counting_verifies() as counter:
        out = verify_run(run)
    assert counter.call_count == 1
    assert [e.id for e in out] == [e.id for e in entries]
    assert [e.payload for e in out] == [p for _, p in run]
    # continuing a run after an authentic previous entry: still one signature
    if len(entries) > 1:
        with counting_verifies() as counter:
            tail = verify_run(run[1:], previous=entries[0])
        assert counter.call_count == 1
        assert [e.id for e in tail] == [e.id for e in entries[1:]]


def test_single_entry_checks_one_signature():
    e = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    with counting_verifies() as counter:
        verify_entry(e.raw, e.payload)
    assert counter.call_count == 1


@SETTINGS
@given(st.sampled_from(IDS), st.lists(kind_and_content, min_size=2, max_size=12),
       st.data())
def test_altered_earlier_byte_breaks_the_run(ident, items, data):
    entries = chain(ident, items)
    k = data.draw(st.integers(0, len(entries) - 2), label="earlier entry")
    raw = bytearray(entries[k].raw)
    i = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[i] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]), label="value")
    run = run_items(entries)
    run[k] = (bytes(raw), None)
    with pytest.raises(ProtocolError):
        verify_run(run)


@SETTINGS
@given(st.sampled_from(IDS), st.lists(kind_and_content, min_size=2, max_size=12),
       kind_and_content, st.data())
def test_resigned_earlier_entry_breaks_the_run(ident, items, replacement, data):
    entries = chain(ident, items)
    k = data.draw(st.integers(0, len(entries) - 2))
    prev = entries[k - 1] if k else None
    other = create_entry(ident, replacement[0], replacement[1], previous=prev,
                         timestamp=entries[k].header.timestamp)
    assume(other.id != entries[k].id)
    run = run_items(entries)
    run[k] = (other.raw, other.payload)
    with pytest.raises(ChainError) as info:
        verify_run(run)
    assert info.value.code == "backlink-mismatch"


@SETTINGS
@given(st.lists(kind_and_content, min_size=2, max_size=8), st.data())
def test_altered_earlier_payload_breaks_the_run(items, data):
    entries = chain(ALICE, items)
    k = data.draw(st.integers(0, len(entries) - 2))
    payload = bytearray(entries[k].payload)
    if payload:
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] ^= data.draw(st.integers(1, 255))
    else:
        payload = bytearray(b"\xc0")
    run = run_items(entries)
    run[k] = (entries[k].raw, bytes(payload))
    with pytest.raises(PayloadError):
        verify_run(run)


def test_run_error_codes():
    e1, e2, e3 = chain(ALICE, [("offer", OFFER)] * 3)
    b1, b2 = chain(BOB, [("offer", OFFER)] * 2)
    assert code(ChainError, verify_run, []) == "empty-run"
    assert code(ChainError, verify_run, run_items([e2, e3])) == "seq-gap"
    assert code(ChainError, verify_run, run_items([e1, e3])) == "seq-gap"
    assert code(ChainError, verify_run, run_items([e3]), previous=e1) == "seq-gap"
    assert code(ChainError, verify_run, run_items([e1, b2])) == "author-mismatch"
    assert code(ChainError, verify_run, run_items([b2]), previous=e1) == "author-mismatch"
    # a well-signed seq 2 that links to some other entry
    elsewhere = Entry(e1.header, e1.raw, sha256(b"elsewhere"))
    stray = create_entry(ALICE, "offer", OFFER, previous=elsewhere, timestamp=TS + 1)
    assert code(ChainError, verify_run, run_items([e1, stray])) == "backlink-mismatch"
    # timestamps must not go backwards
    raw = sign_map(ALICE, header_map(seq=2, back=e1.id, ts=TS - 1))
    assert code(ChainError, verify_run, [(e1.raw, None), (raw, None)]) == \
        "timestamp-regression"
    # the newest entry's signature is the one checked
    bad_last = e2.header_bytes + bytes(64)
    assert code(SignatureError, verify_run, [(e1.raw, None), (bad_last, None)]) == \
        "bad-signature"
    # a run whose newest entry is forged fails even if the earlier ones are genuine
    forged = sign_map(BOB, header_map(seq=2, back=e1.id))
    assert code(SignatureError, verify_run, [(e1.raw, None), (forged, None)]) == \
        "bad-signature"
    # an earlier malformed header
    assert code(ProtocolError, verify_run, [(b"\xc1" + bytes(64), None),
                                            (e2.raw, None)]) == "malformed"


def test_erased_payloads_still_verify():
    entries = chain(ALICE, [("offer", OFFER), ("need", {**OFFER, "urgency": "high"}),
                            ("redact", {"target": b"\x00" * 32})])
    out = verify_run([(e.raw, None) for e in entries])
    assert all(e.payload is None for e in out)
    assert verify_run([(entries[0].raw, None), (entries[1].raw, entries[1].payload),
                       (entries[2].raw, None)])[1].content()["urgency"] == "high"


# -- fork proofs -------------------------------------------------------------------------

@SETTINGS
@given(st.sampled_from(IDS), st.lists(kind_and_content, min_size=0, max_size=4),
       kind_and_content, kind_and_content, st.integers(0, 5))
def test_forks_are_detected(ident, prefix, x, y, dt):
    base = chain(ident, prefix)
    prev = base[-1] if base else None
    a = create_entry(ident, x[0], x[1], previous=prev, timestamp=TS + 100)
    b = create_entry(ident, y[0], y[1], previous=prev, timestamp=TS + 100 + dt)
    assume(a.id != b.id)
    proof = make_fork_proof(a, b)
    assert proof == make_fork_proof(b, a)  # one proof, whatever the order
    assert proof.first.id < proof.second.id
    assert {proof.first.id, proof.second.id} == {a.id, b.id}
    assert proof.first.payload is None and proof.second.payload is None
    data = proof.encode()
    again = decode_fork_proof(data)
    assert again == proof
    assert again.author == ident.public and again.seq == len(base) + 1
    assert ident.node_id in again.describe()
    # both sides of the fork verify on their own signatures
    verify_entry(proof.first.raw)
    verify_entry(proof.second.raw)


def fork_pair():
    a = create_entry(ALICE, "offer", OFFER, timestamp=TS)
    b = create_entry(ALICE, "offer", {**OFFER, "title": "other"}, timestamp=TS)
    return (a, b) if a.id < b.id else (b, a)


def test_fork_proof_rejections():
    a, b = fork_pair()
    a2 = create_entry(ALICE, "withdraw", {"target": a.id}, previous=a, timestamp=TS)
    c = create_entry(BOB, "offer", OFFER, timestamp=TS)
    unsigned = decode_header(a.header_bytes + bytes(64))
    for x, y in [(a, a), (a, a2), (a, c), (unsigned, b), (b, unsigned)]:
        assert code(ForkProofError, make_fork_proof, x, y) == "not-a-fork"
    bad = [
        canonical.encode({"a": a.raw, "b": a.raw}),            # same entry twice
        canonical.encode({"a": a.raw, "b": a2.raw}),           # different seqs
        canonical.encode({"a": a.raw, "b": c.raw}),            # different authors
        canonical.encode({"a": b.raw, "b": a.raw}),            # not ordered by id
        canonical.encode({"a": unsigned.raw, "b": b.raw}),     # not signed
        canonical.encode({"a": a.raw}),                        # missing key
        canonical.encode({"a": a.raw, "b": b.raw, "c": 1}),    # extra key
        canonical.encode([a.raw, b.raw]),                      # not a map
        canonical.encode({"a": a.raw, "b": 5}),                # not a header
        canonical.encode({"a": a.raw, "b": b"\x00" * 70}),     # malformed header
        b"\xc1",                                               # not msgpack
        canonical.encode({"a": a.raw, "b": b.raw}) + b"\x00",  # trailing bytes
        b"\x82\xa1a\xc5\x00" + bytes([len(a.raw)]) + a.raw + b"\xa1b\xc4"
        + bytes([len(b.raw)]) + b.raw,                         # non-canonical bin16
        canonical.encode({"a": a.raw, "b": b.raw + bytes(2000)}),  # too large
    ]
    for data in bad:
        assert code(ForkProofError, decode_fork_proof, data) == "not-a-fork"
    assert decode_fork_proof(canonical.encode({"a": a.raw, "b": b.raw})).first.id == a.id
