"""Kinds, payload schemas, categories and H3 areas (cross-checked against the h3 library)."""

from __future__ import annotations

import h3
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocol.area import MAX_RESOLUTION, cell_resolution, check_area
from protocol.errors import PayloadError
from protocol.kinds import KINDS, check_kind_name, validate_payload
from protocol.taxonomy import STARTER_TAXONOMY, is_category

SETTINGS = settings(max_examples=200, deadline=None)

REF = b"\x11" * 32
PEER = b"\x22" * 32
CELL = h3.latlng_to_cell(52.52, 13.405, 8)
OFFER = {"title": "Ladder to lend", "action": "lend", "category": "tools/hand"}

VALID = {
    "profile": {"name": "Kreuzberg Nachbarschaftshilfe", "about": "We share.", "area": CELL,
                "languages": ["de", "en", "tr"], "seal_key": PEER},
    "offer": {**OFFER, "description": "3 m aluminium", "quantity": {"value": "1", "unit": "item"},
              "area": CELL, "available_from": 1, "available_until": 2, "tags": ["ladder"],
              "language": "en"},
    "need": {"title": "Baby formula", "action": "transfer", "category": "food/baby",
             "urgency": "critical", "radius_km": 10, "quantity": {"value": "2.5", "unit": "kg"}},
    "update": {"target": REF, "set": {"urgency": "low", "title": "New title"}},
    "withdraw": {"target": REF, "reason": "given away"},
    "claim": {"target": REF, "target_author": PEER, "quantity": {"value": "0.25", "unit": "kg"},
              "message": "we can pick up", "sealed": b"\x00" * 100},
    "accept": {"target": REF, "claim": REF, "claim_author": PEER, "sealed": b""},
    "decline": {"target": REF, "claim": REF, "claim_author": PEER, "reason": "already gone"},
    "fulfil": {"target": REF, "claim": REF, "claim_author": PEER,
               "quantity": {"value": "1", "unit": "x"}},
    "trust": {"peer": PEER, "url": "https://aid.example.org:8443/fed"},
    "untrust": {"peer": PEER},
    "redact": {"target": REF},
}


def schema_code(kind: str, content) -> str:
    with pytest.raises(PayloadError) as info:
        validate_payload(kind, content)
    return info.value.code


def test_every_kind_has_a_valid_example():
    assert set(VALID) == set(KINDS)
    for kind, content in VALID.items():
        assert validate_payload(kind, content) == content
        assert KINDS[kind].summary


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_required_fields_and_unknown_fields(kind):
    content = VALID[kind]
    assert schema_code(kind, {**content, "phone": "+1 555 0100"}) == "payload-unknown-field"
    assert schema_code(kind, "not a map") == "payload-schema"
    assert schema_code(kind, [content]) == "payload-schema"
    required = [k for k in content if k in ("title", "action", "category", "name", "target",
                                            "target_author", "claim", "claim_author", "peer",
                                            "url", "set")]
    assert required
    for key in required:
        without = {k: v for k, v in content.items() if k != key}
        assert schema_code(kind, without) == "payload-missing-field"


@pytest.mark.parametrize("kind, content", [
    ("offer", {**OFFER, "title": ""}),
    ("offer", {**OFFER, "title": "x" * 201}),
    ("offer", {**OFFER, "title": 5}),
    ("offer", {**OFFER, "action": "sell"}),
    ("offer", {**OFFER, "category": "Food"}),
    ("offer", {**OFFER, "category": "a/b/c/d/e"}),
    ("offer", {**OFFER, "category": "/food"}),
    ("offer", {**OFFER, "quantity": {"value": "0", "unit": "kg"}}),
    ("offer", {**OFFER, "quantity": {"value": "1.50", "unit": "kg"}}),
    ("offer", {**OFFER, "quantity": {"value": "1e3", "unit": "kg"}}),
    ("offer", {**OFFER, "quantity": {"value": "01", "unit": "kg"}}),
    ("offer", {**OFFER, "quantity": {"value": "-1", "unit": "kg"}}),
    ("offer", {**OFFER, "quantity": {"value": 2, "unit": "kg"}}),
    ("offer", {**OFFER, "quantity": {"value": "1.2345", "unit": "kg"}}),
    ("offer", {**OFFER, "quantity": {"value": "1", "unit": ""}}),
    ("offer", {**OFFER, "available_from": 5, "available_until": 4}),
    ("offer", {**OFFER, "available_from": -1}),
    ("offer", {**OFFER, "available_from": True}),
    ("offer", {**OFFER, "tags": ["a", "a"]}),
    ("offer", {**OFFER, "tags": ["x"] * 21}),
    ("offer", {**OFFER, "tags": [""]}),
    ("offer", {**OFFER, "tags": "a,b"}),
    ("offer", {**OFFER, "language": "english"}),
    ("need", {**OFFER, "urgency": "now"}),
    ("need", {**OFFER, "radius_km": 1001}),
    ("profile", {"name": "x", "seal_key": b"\x00" * 31}),
    ("profile", {"name": "x", "languages": ["en", "en"]}),
    ("update", {"target": REF, "set": {}}),
    ("update", {"target": REF, "set": {"available_from": 9, "available_until": 1}}),
    ("update", {"target": REF, "set": {"action": "steal"}}),
    ("update", {"target": b"\x00" * 31, "set": {"title": "x"}}),
    ("claim", {"target": REF, "target_author": PEER, "sealed": b"\x00" * 4097}),
    ("claim", {"target": REF, "target_author": "am" + "22" * 32}),
    ("trust", {"peer": PEER, "url": "ftp://x.org"}),
    ("trust", {"peer": PEER, "url": "https://"}),
    ("trust", {"peer": PEER, "url": "https://a b"}),
])
def test_schema_violations(kind, content):
    assert schema_code(kind, content) == "payload-schema"


def test_update_set_rejects_unknown_field():
    assert schema_code("offer", {**OFFER, "urgency": "high"}) == "payload-unknown-field"
    assert schema_code("update", {"target": REF, "set": {"phone": "1"}}) == \
        "payload-unknown-field"


def test_unknown_kinds_pass_anything():
    for content in (None, 1, "x", [1, 2], {"anything": b"goes"}):
        assert validate_payload("x-future", content) == content


@pytest.mark.parametrize("kind", ["offer", "x", "a-b_c.d", "z" + "9" * 31])
def test_kind_names_ok(kind):
    assert check_kind_name(kind) == kind


@pytest.mark.parametrize("kind", ["", "Offer", "1offer", "-x", "a" * 33, "off er", "é", 5, None])
def test_kind_names_rejected(kind):
    with pytest.raises(PayloadError) as info:
        check_kind_name(kind)
    assert info.value.code == "bad-kind"


@pytest.mark.parametrize("check, value", [
    (check_kind_name, "offer\n"),
    (check_area, CELL + "\n"),
    (lambda v: validate_payload("offer", {**OFFER, "category": v}), "food\n"),
    (lambda v: validate_payload("offer", {**OFFER, "quantity": {"value": v, "unit": "kg"}}),
     "2\n"),
    (lambda v: validate_payload("offer", {**OFFER, "language": v}), "en\n"),
    (lambda v: validate_payload("trust", {"peer": PEER, "url": v}), "https://x.org\n"),
])
def test_trailing_newline_rejected(check, value):
    with pytest.raises(PayloadError):
        check(value)


def test_starter_taxonomy_is_well_formed():
    assert all(is_category(path) for path in STARTER_TAXONOMY)
    assert not is_category(None)
    assert not is_category("x" * 101)


# -- areas -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["52.52,13.40", "52.52, 13.40", "-33.9 18.4", 52.5, None,
                                   ["8828308281fffff"], "8828308281FFFFF", "zz"])
def test_area_not_h3(value):
    with pytest.raises(PayloadError) as info:
        check_area(value)
    assert info.value.code == "area-not-h3"
    assert schema_code("offer", {**OFFER, "area": value}) == "area-not-h3"


def test_area_too_precise_in_payload():
    cell = h3.latlng_to_cell(52.52, 13.405, 9)
    assert schema_code("offer", {**OFFER, "area": cell}) == "area-too-precise"
    assert schema_code("profile", {"name": "x", "area": cell}) == "area-too-precise"


lat = st.floats(-90, 90, allow_nan=False)
lng = st.floats(-180, 180, allow_nan=False)


@SETTINGS
@given(lat, lng, st.integers(0, 15))
def test_h3_cells_accepted_iff_coarse(la, ln, res):
    cell = h3.latlng_to_cell(la, ln, res)
    assert cell_resolution(cell) == res == h3.get_resolution(cell)
    if res <= MAX_RESOLUTION:
        assert check_area(cell) == cell
    else:
        with pytest.raises(PayloadError) as info:
            check_area(cell)
        assert info.value.code == "area-too-precise"


def ours_valid(cell: str) -> bool:
    try:
        cell_resolution(cell)
    except PayloadError as exc:
        assert exc.code == "area-not-h3"
        return False
    return True


def agree(cell: str) -> None:
    assert len(cell) == 15
    assert ours_valid(cell) == bool(h3.is_valid_cell(cell)), cell


PENTAGONS = [p for res in range(16) for p in h3.get_pentagons(res)]


@SETTINGS
@given(st.from_regex(r"[0-9a-f]{15}", fullmatch=True))
@example("8009fffffffffff")  # pentagon, res 0
@example("8019fffffffffff")  # base cell 12 (a hexagon), res 0
@example("8f0000000000000")  # res 15, all-centre digits
def test_random_hex_strings_agree_with_h3(cell):
    agree(cell)


def structured_cells():
    """Indexes assembled from fields, so both valid and invalid cells come up often."""
    def build(high, mode, reserved, res, base, digits):
        index = (high << 63) | (mode << 59) | (reserved << 56) | (res << 52) | (base << 45)
        for i, d in enumerate(digits, start=1):
            index |= d << ((15 - i) * 3)
        return index

    return st.builds(
        build,
        st.just(0),
        st.sampled_from([1, 1, 1, 1, 0, 2, 3]),
        st.sampled_from([0, 0, 0, 0, 1, 4]),
        st.integers(0, 15),
        st.one_of(st.integers(0, 127), st.sampled_from(
            [4, 14, 24, 38, 49, 58, 63, 72, 83, 97, 107, 117, 121, 122])),
        st.lists(st.sampled_from([0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 7, 7]), min_size=15,
                 max_size=15),
    ).filter(lambda i: i < 2**60).map(lambda i: f"{i:015x}")


@SETTINGS
@given(structured_cells())
def test_structured_indexes_agree_with_h3(cell):
    agree(cell)


@SETTINGS
@given(st.one_of(st.sampled_from(PENTAGONS), lat.flatmap(
    lambda la: lng.flatmap(lambda ln: st.integers(0, 15).map(
        lambda r: h3.latlng_to_cell(la, ln, r)))),
), st.integers(0, 59), st.integers(1, 15))
def test_mutated_cells_agree_with_h3(cell, bit, nibble):
    agree(cell)
    index = int(cell, 16)
    agree(f"{index ^ (1 << bit):015x}")  # one flipped bit (stays under 2**60)
    i = nibble % 15
    s = list(cell)
    s[i] = "0123456789abcdef"[(int(s[i], 16) + nibble) % 16]
    agree("".join(s))  # one changed hex digit


@pytest.mark.parametrize("res", range(16))
def test_pentagons_and_their_deleted_subsequence(res):
    for p in h3.get_pentagons(res):
        assert cell_resolution(p) == res
        agree(p)
        if res:
            # setting the first digit to 1 (the deleted K axis) makes an invalid cell
            index = int(p, 16) & ~(0x7 << 42) | (1 << 42)
            bad = f"{index:015x}"
            assert not h3.is_valid_cell(bad)
            assert not ours_valid(bad)
        for child in list(h3.cell_to_children(p, min(res + 1, 15)))[:7]:
            agree(child)


@pytest.mark.parametrize("char,allowed", [
    ("\u001c", False), ("\u001f", False), ("\u0085", False), ("\u00a0", False),
    ("\u3000", False), ("\t", False), ("\ufeff", True), ("\u200b", True), ("é", True),
])
def test_url_whitespace_is_the_spec_list_not_a_regex_engine_guess(char, allowed):
    """§9.1 names the whitespace code points; U+FEFF and U+200B are not among them."""
    from protocol.kinds import URL_RE, WHITESPACE

    assert set(WHITESPACE) == {chr(i) for i in range(0x110000) if chr(i).isspace()}
    for url in (f"http://host{char}.org/", f"http://host.org/a{char}b"):
        assert bool(URL_RE.match(url)) is allowed, repr(url)
