"""A claim can fill a need (issue 10): `for_need` on a claim on an offer, `from_offer` on a
claim on a need, and one call from a match to such a claim.

Two real nodes for the "Done when" item (a need filled through a claim on an offer ends
`fulfilled` on both nodes and leaves the matches) and for the symmetric case; one node
with other groups' logs ingested for the refusals, each of which must write nothing.
"""

from __future__ import annotations

import json
from typing import Any

import h3
from conftest import expect_problem, make_log
from federation_helpers import Cluster, FedNode, wait_until

from protocol import Identity

CELL = h3.latlng_to_cell(52.52, 13.405, 8)
NEED = {"title": "Bread for the soup kitchen", "category": "food", "action": "transfer",
        "area": CELL, "quantity": {"value": 8, "unit": "loaves"}}
OFFER = {"title": "Loaves from the bakery", "category": "food/bread", "action": "transfer",
         "area": CELL, "quantity": {"value": 20, "unit": "loaf"}}


async def agree(nodes: list[FedNode], what: str, get, expect) -> None:
    async def check() -> bool:
        return all([await get(n) == expect for n in nodes])
    await wait_until(check, what=what)


async def matched(node: FedNode, need_id: str) -> list[str]:
    body = await node.call("GET", f"/api/v1/matches?need={need_id}")
    return [m["offer"]["id"] for m in body["items"]]


async def claim_at(node: FedNode, claim_id: str) -> dict[str, Any] | None:
    status, body = await node.call("GET", f"/api/v1/claims/{claim_id}", expect=None)
    return body if status == 200 else None


async def test_a_need_filled_through_a_claim_ends_fulfilled_on_both_nodes(cluster: Cluster):
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    need = await a.create("need", **NEED)
    offer = await b.create("offer", **OFFER)
    await agree([a, b], "the match on both nodes", lambda n: matched(n, need["id"]),
                [offer["id"]])

    # One call from the match: a claim on B's offer for A's need, for what the need lacks.
    claim = await a.call("POST", "/api/v1/matches/claim",
                         {"need": need["id"], "offer": offer["id"], "message": "Friday"}, 201)
    assert (claim["target"], claim["for_need"], claim["from_offer"]) == (
        offer["id"], need["id"], None)
    assert claim["quantity"] == {"value": 8, "unit": "loaf"} and claim["status"] == "pending"
    assert (await a.listing(need["id"], "need"))["status"] == "open"  # until B accepts
    await wait_until(lambda: claim_at(b, claim["id"]), what="the claim at B")
    accepted = await b.call("POST", f"/api/v1/claims/{claim['id']}/accept", {})
    assert accepted["committed_quantity"] == {"value": 8, "unit": "loaf"}

    async def need_state(n: FedNode) -> tuple | None:
        got = await n.listing(need["id"], "need")
        return got and (got["status"], got["committed_quantity"], got["available_quantity"])

    async def offer_state(n: FedNode) -> tuple | None:
        got = await n.listing(offer["id"])
        return got and (got["status"], got["available_quantity"]["value"])

    await agree([a, b], "the need committed everywhere", need_state,
                ("committed", {"value": 8, "unit": "loaf"}, {"value": 0, "unit": "loaf"}))
    await agree([a, b], "the offer committed everywhere", offer_state,
                ("partly-committed", 12))
    events = [json.loads(r[0]) for n in (a, b)
              for r in n.query("SELECT data FROM events WHERE type = 'listing'")]
    assert events.count({"id": need["id"], "kind": "need", "origin": a.id,
                         "change": "drawn"}) == 2  # SSE and webhooks hear it on both nodes
    for n in (a, b):  # fully committed: the need leaves the matches
        assert await matched(n, need["id"]) == []
        assert need["id"] not in {m["need"]["id"] for m in (
            await n.call("GET", "/api/v1/matches"))["items"]}

    await a.call("POST", f"/api/v1/claims/{claim['id']}/fulfil", {})
    await b.call("POST", f"/api/v1/claims/{claim['id']}/fulfil", {})
    await agree([a, b], "the need fulfilled everywhere", need_state,
                ("fulfilled", {"value": 8, "unit": "loaf"}, {"value": 0, "unit": "loaf"}))

    async def claim_state(n: FedNode) -> tuple | None:
        got = await claim_at(n, claim["id"])
        return got and (got["status"], got["for_need"], len(got["responses"]))
    await agree([a, b], "the claim fulfilled everywhere", claim_state,
                ("fulfilled", need["id"], 3))
    await agree([a, b], "the offer keeps the rest", offer_state, ("partly-committed", 12))


async def test_answering_a_need_from_one_of_our_offers_draws_on_it(cluster: Cluster):
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    need = await a.create("need", **{**NEED, "category": "goods", "title": "Blankets",
                                      "quantity": {"value": 6, "unit": "each"}})
    offer = await b.create("offer", **{**OFFER, "category": "goods", "title": "Blankets",
                                        "quantity": {"value": 4, "unit": "pieces"}})
    assert offer["quantity"] == {"value": 4, "unit": "each"}
    await agree([a, b], "the match on both nodes", lambda n: matched(n, need["id"]),
                [offer["id"]])
    # B answers A's need from its offer, in one call from the match.
    claim = await b.call("POST", "/api/v1/matches/claim",
                         {"need": need["id"], "offer": offer["id"]}, 201)
    assert (claim["target"], claim["from_offer"], claim["for_need"]) == (
        need["id"], offer["id"], None)
    assert claim["quantity"] == {"value": 4, "unit": "each"}  # all the offer has
    await wait_until(lambda: claim_at(a, claim["id"]), what="the claim at A")
    await a.call("POST", f"/api/v1/claims/{claim['id']}/accept", {})

    async def states(n: FedNode) -> tuple | None:
        got_need, got_offer = await n.listing(need["id"], "need"), await n.listing(offer["id"])
        return got_need and got_offer and (
            got_need["status"], got_need["available_quantity"]["value"],
            got_offer["status"], got_offer["available_quantity"]["value"])
    await agree([a, b], "need and offer committed everywhere", states,
                ("partly-committed", 2, "committed", 0))
    for n in (a, b):
        assert await matched(n, need["id"]) == []  # the offer has nothing left


# -- refusals -----------------------------------------------------------------------------


async def test_refused_links_and_match_claims_write_nothing(node):
    other, third = Identity.generate(), Identity.generate()
    theirs = make_log(other, [
        ("offer", {"title": "Bread", "category": "food/bread", "action": "transfer",
                   "quantity": {"value": "20", "unit": "loaves"}}),
        ("need", {"title": "Rice", "category": "food/pantry", "action": "transfer",
                  "quantity": {"value": "2", "unit": "kg"}}),
        ("offer", {"title": "Ladder", "category": "tools", "action": "lend"})])
    bread, rice, ladder = (e.id.hex() for e in theirs)
    node.home.ingest(theirs)
    far = make_log(third, [("need", {"title": "Bread far", "category": "food",
                                     "action": "transfer"})])
    node.home.ingest(far)
    need = await node.create("need", title="Bread", category="food", action="transfer",
                             quantity={"value": 8, "unit": "loaf"})
    in_kg = await node.create("need", title="Flour", category="food", action="transfer",
                              quantity={"value": 1, "unit": "kg"})
    mine = await node.create("offer", title="Rice", category="food/pantry",
                             action="transfer", quantity={"value": 500, "unit": "g"})
    gone = await node.create("need", title="Old", category="food", action="transfer")
    await node.json("DELETE", f"/api/v1/needs/{gone['id']}", role="coordinator")
    on_bread, on_rice = f"/api/v1/offers/{bread}/claims", f"/api/v1/needs/{rice}/claims"
    cases = [
        (on_bread, {"for_need": far[0].id.hex()}, 422, "not-own", "for_need"),
        (on_bread, {"for_need": mine["id"]}, 422, "not-own", "for_need"),
        (on_bread, {"for_need": need["id"], "from_offer": mine["id"]}, 422, "invalid-field",
         "from_offer"),
        (on_bread, {"from_offer": mine["id"]}, 422, "invalid-field", "from_offer"),
        (on_bread, {"for_need": "xyz"}, 422, "invalid-field", "for_need"),
        (on_bread, {"for_need": 7}, 422, "invalid-field", "for_need"),
        (on_bread, {"for_need": in_kg["id"]}, 422, "unit-mismatch", "for_need"),
        (on_bread, {"for_need": gone["id"]}, 409, "withdrawn", "for_need"),
        (on_bread, {"for_need": need["id"], "quantity": 9}, 409, "not-enough", "for_need"),
        (on_rice, {"from_offer": mine["id"], "quantity": {"value": 0.6, "unit": "kg"}}, 409,
         "not-enough", "from_offer"),
        (on_rice, {"for_need": need["id"]}, 422, "invalid-field", "for_need"),
        ("/api/v1/matches/claim", {"need": far[0].id.hex(), "offer": bread}, 422,
         "not-a-party", None),
        ("/api/v1/matches/claim", {"need": need["id"], "offer": mine["id"]}, 422,
         "own-listing", None),
        ("/api/v1/matches/claim", {"need": need["id"], "offer": ladder}, 422, "no-match",
         None),
        ("/api/v1/matches/claim", {"need": in_kg["id"], "offer": bread}, 422, "no-match",
         None),
        ("/api/v1/matches/claim", {"need": "0" * 64, "offer": bread}, 404, "not-found",
         "need"),
        ("/api/v1/matches/claim", {"need": need["id"]}, 422, "invalid-field", "offer"),
        ("/api/v1/matches/claim", {"need": need["id"], "offer": bread, "for_need": "x"}, 422,
         "unknown-field", "for_need"),
    ]
    before = node.home.snapshot()
    for path, body, status, code, field in cases:
        r = await node.post(path, role="coordinator", json=body)
        await expect_problem(r, status, code, field)
    r = await node.post("/api/v1/matches/claim", role="reader",
                        json={"need": need["id"], "offer": bread})
    await expect_problem(r, 403, "forbidden")
    assert node.home.snapshot() == before

    # A pending claim for the whole need promises it: a second one is refused.
    first = await node.json("POST", on_bread, 201, role="coordinator",
                            json={"for_need": need["id"]})
    assert first["quantity"] == {"value": 8, "unit": "loaves"}  # theirs, as written
    before = node.home.snapshot()
    r = await node.post("/api/v1/matches/claim", role="coordinator",
                        json={"need": need["id"], "offer": bread})
    await expect_problem(r, 409, "nothing-available", "for_need")
    assert node.home.snapshot() == before


async def test_our_offer_promised_by_a_pending_claim_is_not_accepted_twice(node):
    other = Identity.generate()
    offer = await node.create("offer", title="Rice", category="food/pantry",
                              action="transfer", quantity={"value": 2, "unit": "kg"})
    log = make_log(other, [("need", {"title": "Rice", "category": "food/pantry",
                                     "action": "transfer",
                                     "quantity": {"value": "5", "unit": "kg"}})])
    node.home.ingest(log)
    answer = await node.json("POST", f"/api/v1/needs/{log[0].id.hex()}/claims", 201,
                             role="coordinator", json={"from_offer": offer["id"]})
    assert answer["quantity"] == {"value": 2, "unit": "kg"}
    log += make_log(other, [("claim", {"target": bytes.fromhex(offer["id"]),
                                       "target_author": node.home.identity.public})],
                    previous=log[-1])
    node.home.ingest(log[1:])
    before = node.home.snapshot()
    r = await node.post(f"/api/v1/claims/{log[1].id.hex()}/accept", role="coordinator",
                        json={})
    await expect_problem(r, 409, "nothing-available")
    assert node.home.snapshot() == before
