"""Sealed fields: only the two parties of an exchange can open them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import canonical
from protocol.errors import SealError
from protocol.identity import Identity
from protocol.kinds import MAX_SEALED, validate_payload
from protocol.seal import open_sealed, parties, seal

SETTINGS = settings(max_examples=100, deadline=None)

IDS = [Identity.from_secret(bytes([0x40 + i]) * 32) for i in range(3)]
SENDER, RECIPIENT, OUTSIDER = (i.seal_private() for i in IDS)
DETAILS = canonical.encode({"address": "Flat 3, 12 Example Street", "phone": "+44 20 7946 0000",
                            "name": "Sam"})


def seal_code(fn, *args, **kwargs) -> str:
    with pytest.raises(SealError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_seal_keys_derive_from_identity():
    ident = IDS[0]
    assert ident.seal_public() == Identity.from_pem(ident.to_pem()).seal_public()
    assert len(ident.seal_public()) == 32
    assert ident.seal_public() != ident.public
    assert len({i.seal_public() for i in IDS}) == 3


@SETTINGS
@given(st.binary(max_size=2000))
def test_both_parties_open_outsider_cannot(plaintext):
    box = seal(SENDER, IDS[1].seal_public(), plaintext)
    assert len(box) <= MAX_SEALED
    assert open_sealed(RECIPIENT, box) == plaintext
    assert open_sealed(SENDER, box) == plaintext
    assert parties(box) == (IDS[0].seal_public(), IDS[1].seal_public())
    assert seal_code(open_sealed, OUTSIDER, box) == "not-a-party"
    assert seal_code(open_sealed, X25519PrivateKey.generate(), box) == "not-a-party"
    # a box fits the 'sealed' field of claims, accepts and fulfils
    validate_payload("claim", {"target": b"\x00" * 32, "target_author": b"\x01" * 32,
                               "sealed": box})


def test_random_nonce_each_time():
    a = seal(SENDER, IDS[1].seal_public(), DETAILS)
    b = seal(SENDER, IDS[1].seal_public(), DETAILS)
    assert a != b
    fixed = seal(SENDER, IDS[1].seal_public(), DETAILS, nonce=b"\x07" * 12)
    assert fixed == seal(SENDER, IDS[1].seal_public(), DETAILS, nonce=b"\x07" * 12)
    assert canonical.decode(fixed)["nonce"] == b"\x07" * 12


def test_box_is_canonical_map():
    box = seal(SENDER, IDS[1].seal_public(), DETAILS)
    m = canonical.decode(box)
    assert set(m) == {"v", "from", "to", "nonce", "ct"}
    assert m["v"] == 1 and len(m["ct"]) == len(DETAILS) + 16
    assert DETAILS not in box and b"Example Street" not in box


@SETTINGS
@given(st.binary(max_size=300), st.data())
def test_any_tampered_byte_fails(plaintext, data):
    box = bytearray(seal(SENDER, IDS[1].seal_public(), plaintext))
    i = data.draw(st.integers(0, len(box) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != box[i]))
    box[i] = new
    for key in (RECIPIENT, SENDER, OUTSIDER):
        with pytest.raises(SealError):
            open_sealed(key, bytes(box))


def test_every_byte_position_tampered():
    box = seal(SENDER, IDS[1].seal_public(), DETAILS)
    for i in range(len(box)):
        for delta in (1, 0x80):
            bad = bytearray(box)
            bad[i] ^= delta
            for key in (RECIPIENT, SENDER):
                with pytest.raises(SealError):
                    open_sealed(key, bytes(bad))


def test_version_true_is_rejected():
    # 'v': 1 -> 'v': true is the one tamper canonical msgpack alone would let through,
    # since True == 1 in Python and the box header is not part of the AEAD's AAD.
    box = seal(SENDER, IDS[1].seal_public(), DETAILS)
    assert box.endswith(b"\xa1v\x01")
    tampered = box[:-1] + b"\xc3"
    with pytest.raises(SealError):
        open_sealed(RECIPIENT, tampered)


def test_swapped_parties_fail():
    box = canonical.decode(seal(SENDER, IDS[1].seal_public(), DETAILS))
    swapped = canonical.encode({**box, "from": box["to"], "to": box["from"]})
    with pytest.raises(SealError) as info:
        open_sealed(RECIPIENT, swapped)
    assert info.value.code == "bad-seal"


@pytest.mark.parametrize("mutate", [
    lambda m: {**m, "v": 2},
    lambda m: {**m, "from": m["from"][:31]},
    lambda m: {**m, "to": m["to"] + b"\x00"},
    lambda m: {**m, "nonce": m["nonce"][:11]},
    lambda m: {**m, "ct": m["ct"][:15]},
    lambda m: {**m, "ct": "text"},
    lambda m: {**m, "extra": 1},
    lambda m: {k: v for k, v in m.items() if k != "nonce"},
    lambda m: [m["ct"]],
    lambda m: {**m, "from": b"\x00" * 32},  # low-order point: no shared secret
])
def test_malformed_boxes(mutate):
    m = canonical.decode(seal(SENDER, IDS[1].seal_public(), DETAILS))
    box = canonical.encode(mutate(m))
    assert seal_code(open_sealed, RECIPIENT, box) == "bad-seal"


def test_not_canonical_or_too_large():
    box = seal(SENDER, IDS[1].seal_public(), DETAILS)
    assert seal_code(open_sealed, RECIPIENT, box + b"\x00") == "bad-seal"
    assert seal_code(open_sealed, RECIPIENT, b"\xc1") == "bad-seal"
    assert seal_code(parties, b"") == "bad-seal"
    assert seal_code(open_sealed, RECIPIENT, bytes(MAX_SEALED + 1)) == "bad-seal"


def test_seal_error_codes():
    assert seal_code(seal, SENDER, b"\x00" * 31, DETAILS) == "bad-seal"
    assert seal_code(seal, SENDER, IDS[1].seal_public(), bytes(MAX_SEALED)) == "seal-too-large"
    assert seal_code(seal, SENDER, b"\x00" * 32, DETAILS) == "bad-seal"  # low-order key
    assert seal_code(open_sealed, OUTSIDER,
                     seal(SENDER, IDS[1].seal_public(), DETAILS)) == "not-a-party"
