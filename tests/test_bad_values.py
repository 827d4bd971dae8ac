"""Every bad value is a 4xx problem and writes nothing: huge, tiny, non-finite quantities."""

from __future__ import annotations

import pytest
from conftest import OFFER, make_log

from protocol import Identity

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
