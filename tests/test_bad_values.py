"""Every bad value is a 4xx problem and writes nothing: huge, tiny, non-finite quantities,
query parameters of any shape, strings that are almost numbers or times, JavaScript constants;
what the spec allows (node/http/openapi.json) is taken."""

from __future__ import annotations

import h3
import pytest
from conftest import OFFER, expect_problem, make_log

from protocol import Identity

CELL = "881f1d4811fffff"
HUGE = [1e25, "1e25", 10**30, 1e308, "NaN", "Infinity", 5e-324, "1e-30"]


@pytest.mark.parametrize("value", HUGE)
async def test_quantities_out_of_range_are_422_on_every_write(node, value):
    offer = await node.create("offer", body=OFFER)
    other = Identity.generate()
    log = make_log(other, [
        ("profile", {"name": "Other", "seal_key": other.seal_public()}),
        ("offer", {**{k: v for k, v in OFFER.items() if k != "quantity"},
                   "quantity": {"value": "5", "unit": "loaves"}}),
        ("claim", {"target": bytes.fromhex(offer["id"]),
                   "target_author": node.home.identity.public,
                   "quantity": {"value": "2", "unit": "loaves"}}),
    ])
    node.home.ingest(log)
    theirs, claim = log[1].id.hex(), log[2].id.hex()
    before = node.home.snapshot()
    quantity = {"value": value, "unit": "loaves"}
    for method, path, body in [
        ("POST", "/api/v1/offers", {**OFFER, "quantity": quantity}),
        ("POST", "/api/v1/needs", {"title": "x", "category": "food/bread",
                                   "action": "transfer", "quantity": quantity}),
        ("PATCH", f"/api/v1/offers/{offer['id']}", {"quantity": quantity}),
        ("POST", f"/api/v1/offers/{theirs}/claims", {"quantity": quantity}),
        ("POST", f"/api/v1/offers/{theirs}/claims", {"quantity": value}),
        ("POST", f"/api/v1/claims/{claim}/accept", {"quantity": value}),
        ("POST", f"/api/v1/claims/{claim}/fulfil", {"quantity": value}),
    ]:
        r = await node.request(method, path, json=body)
        problem = await r.json()
        assert r.status == 422, (path, problem)
        assert problem["type"] == "urn:aidmesh:problem:invalid-field", problem
        assert problem["field"].startswith("quantity"), problem
    assert node.home.snapshot() == before


@pytest.mark.parametrize("near", ["-1", "10000000000000000", "fffffffffffffffff",
                                  "8fffffffffffffff", "0", "", "881f1d4811fffff\n"])
async def test_near_values_that_are_no_h3_cell_are_400(node, near):
    for kind in ("offers", "needs"):
        r = await node.get(f"/api/v1/{kind}", params={"near": near}, role="reader")
        problem = await r.json()
        assert r.status == 400, (near, problem)
        assert problem["type"] == "urn:aidmesh:problem:invalid-parameter"
        assert problem["field"] == "near"


# -- query parameters: every value is a 400 naming the parameter, never a 500 -------------------

NOT_CELLS = ["-1", "10000000000000000", "fffffffffffffffff", "000000000000000", "",
             "8928308280FFFFF", " 8928308280fffff", "0x8928308280fffff", "8928308280fffff\n",
             "881f1d4811ffffe",  # a res-8 cell whose unused digits are not all 7
             "81087ffffffffff"]  # pentagon base cell 4, first digit 1: a deleted sub-sequence


@pytest.mark.parametrize("near", NOT_CELLS)
async def test_near_that_is_no_h3_cell_is_400(node, near):
    await node.create("offer", body={**OFFER, "area": CELL})
    before = node.home.snapshot()
    for path in ("/api/v1/offers", "/api/v1/needs"):
        r = await node.get(path, params={"near": near}, role="reader")
        await expect_problem(r, 400, "invalid-parameter", "near")
    assert node.home.snapshot() == before


async def test_near_takes_any_valid_cell(node):
    offer = await node.create("offer", body={**OFFER, "area": CELL})
    for near in (CELL, h3.cell_to_parent(CELL, 0), h3.cell_to_children(CELL, 15)[0],
                 *sorted(h3.get_pentagons(0))[:1]):
        body = await node.json("GET", "/api/v1/offers", params={"near": near,
                                                               "radius_km": "1000"})
        assert [o["id"] for o in body["items"]] == ([offer["id"]] if near != sorted(
            h3.get_pentagons(0))[0] else []), near


@pytest.mark.parametrize("path,name,value", [
    ("/api/v1/offers", "limit", "+5"), ("/api/v1/offers", "limit", " 5"),
    ("/api/v1/offers", "limit", "\u0665"), ("/api/v1/offers", "limit", "5.0"),
    ("/api/v1/offers", "limit", "1e2"), ("/api/v1/offers", "limit", "9" * 40),
    ("/api/v1/needs", "radius_km", "-1"), ("/api/v1/needs", "radius_km", "1001"),
    ("/api/v1/offers", "q", "x" * 501), ("/api/v1/offers", "origin", "am00"),
    ("/api/v1/offers", "updated_since", "2026-11-21T18:00Z"),
    ("/api/v1/offers", "updated_since", "2026-11-21"),
    ("/api/v1/claims", "limit", "\u00b2"), ("/api/v1/matches", "limit", "0x10"),
    ("/api/v1/logs/{me}/entries", "after", "\u00b2"),
    ("/api/v1/logs/{me}/entries", "after", str(2**53 + 1)),
    ("/api/v1/events", "after", "\u00b2"), ("/api/v1/events", "after", "1" * 17),
    ("/api/v1/events", "types", "listing, match"), ("/api/v1/events", "types", ",listing"),
])
async def test_query_values_outside_the_spec_are_400(node, path, name, value):
    before = node.home.snapshot()
    r = await node.get(path.format(me=node.node_id), params={name: value})
    await expect_problem(r, 400, "invalid-parameter", name)
    assert node.home.snapshot() == before


async def test_last_event_id_and_after_are_both_checked(node):
    r = await node.get("/api/v1/events", params={"after": "1" * 17},
                       headers={"Last-Event-ID": "0"})
    await expect_problem(r, 400, "invalid-parameter", "after")
    r = await node.get("/api/v1/events", headers={"Last-Event-ID": "\u00b2"})
    await expect_problem(r, 400, "invalid-parameter", "Last-Event-ID")


async def test_radius_without_near_is_checked_but_harmless(node):
    offer = await node.create("offer")
    body = await node.json("GET", "/api/v1/offers", params={"radius_km": "5"})
    assert [o["id"] for o in body["items"]] == [offer["id"]]


# -- body values: a 422 naming the field (or 400 for what is not JSON) -------------------------


@pytest.mark.parametrize("value", ["1e3", " 1", "1_000", "+1", "0x10", "\u0661", "1.", ".5",
                                   "0", "0.000", "0.0004", "-1", "", "1" * 13, "1,5"])
async def test_quantity_strings_are_plain_decimals(node, value):
    before = node.home.snapshot()
    r = await node.post("/api/v1/offers",
                        json={**OFFER, "quantity": {"value": value, "unit": "kg"}})
    await expect_problem(r, 422, "invalid-field", "quantity.value")
    assert node.home.snapshot() == before


@pytest.mark.parametrize("value,stored", [("00012", 12), ("1.5000", 1.5), ("0.001", 0.001),
                                          ("999999999999.999", 999999999999.999)])
async def test_quantity_strings_the_spec_allows_are_taken(node, value, stored):
    offer = await node.create("offer", body={**OFFER, "quantity": {"value": value,
                                                                   "unit": "kg"}})
    assert offer["quantity"]["value"] == stored


@pytest.mark.parametrize("value", ["2099-11-21T18:00Z", "2099-11-21", "20991121T180000Z",
                                   "2099-11-21T18:00:00", "2099-02-30T00:00:00Z",
                                   "2099-11-21 18:00:00Z", "\u0662099-11-21T18:00:00Z",
                                   "2099-11-21T18:00:00+24:00", "2099-11-21T18:00:00.Z"])
async def test_times_are_rfc_3339_exactly(node, value):
    before = node.home.snapshot()
    r = await node.post("/api/v1/offers", json={**OFFER, "available_until": value})
    await expect_problem(r, 422, "invalid-field", "available_until")
    assert node.home.snapshot() == before


@pytest.mark.parametrize("value", ["2099-11-21t18:00:00.5z", "2099-12-31T23:59:60Z",
                                   "2099-11-21T18:00:00.123456789-09:30"])
async def test_rfc_3339_forms_are_taken(node, value):
    await node.create("offer", body={**OFFER, "available_until": value})


@pytest.mark.parametrize("value", ["0000-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59",
                                   "1970-01-01T00:30:00+01:00"])
async def test_times_before_1970_are_422_not_500(node, value):
    before = node.home.snapshot()
    r = await node.post("/api/v1/offers", json={**OFFER, "available_from": value})
    await expect_problem(r, 422, None, "available_from")
    body = await node.json("GET", "/api/v1/offers", params={"updated_since": value})
    assert body["items"] == []
    assert node.home.snapshot() == before


@pytest.mark.parametrize("raw", [b'{"title": NaN}', b'{"quantity": {"value": Infinity, '
                                 b'"unit": "kg"}}', b'{"radius_km": -Infinity}'])
async def test_javascript_constants_are_not_json(node, raw):
    before = node.home.snapshot()
    r = await node.post("/api/v1/needs", data=raw, headers={"Content-Type": "application/json"})
    await expect_problem(r, 400, "malformed-json")
    assert node.home.snapshot() == before


@pytest.mark.parametrize("title,status", [("\x00", 201), ("\u202e\u200b", 201), ("x" * 200, 201),
                                          ("x" * 201, 422), ("\U0001f35e" * 200, 201)])
async def test_odd_text_is_taken_or_422(node, title, status):
    r = await node.post("/api/v1/offers", json={**OFFER, "title": title})
    assert r.status == status, await r.text()
