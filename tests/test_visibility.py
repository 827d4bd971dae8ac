"""What a node shows, on every path (issue 14, findings 7-10) with real nodes.

Hidden and blocked listings are out of lists, reads by id, claims, answers, matches, the
event stream and what the node serves to peers; crafted cursors are 400s, never 500s;
a sealed box copied into another claim shows nothing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from conftest import expect_problem
from federation_helpers import Cluster, FedNode, wait_until

from node.services.ledger import open_ledger
from protocol import decode

FUTURE = "2099-01-01T00:00:00Z"
OFFER = {"title": "Loaves", "category": "food/bread", "action": "transfer",
         "quantity": {"value": 20, "unit": "loaves"}, "available_until": FUTURE}
NEED = {"title": "Bread for the kitchen", "category": "food", "action": "transfer",
        "quantity": {"value": 5, "unit": "loaves"}, "available_until": FUTURE}


async def problem(node: FedNode, method: str, path: str, body: Any = None
                  ) -> tuple[int, str]:
    status, got = await node.call(method, path, body, expect=None)
    assert status >= 400 and got["status"] == status and got["detail"], (status, got)
    return status, got["type"].rsplit(":", 1)[1]


def entries(node: FedNode) -> list[tuple]:
    return node.query("SELECT author, seq, id, payload IS NULL FROM entries "
                      "ORDER BY author, seq")


async def sse_until(node: FedNode, sentinel: str) -> list[dict[str, Any]]:
    """Every event the stream replays from the start, up to the sentinel listing's."""
    seen: list[dict[str, Any]] = []
    headers = {"Authorization": "Bearer " + node.admin_token, "Last-Event-ID": "0"}
    async with node.session.get(node.url + "/api/v1/events", headers=headers) as r:
        assert r.status == 200
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append(event)
                if event["type"] == "listing" and event["data"]["id"] == sentinel:
                    return seen
    raise AssertionError("the stream ended before the sentinel")


@pytest.fixture
async def world(cluster: Cluster):
    """A and B peered; A's two offers and a claim of A's on B's need, B's claim on one of
    A's offers and a need of B's that matches A's offers; all of it at B."""
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    one = await a.create(**{**OFFER, "title": "Loaves one"})
    two = await a.create(**{**OFFER, "title": "Loaves two"})
    need = await b.create("need", **NEED)
    await wait_until(lambda: b.has_offer(two["id"]), what="A's offers at B")
    await wait_until(lambda: a.listing(need["id"], "need"), what="B's need at A")
    out = await b.call("POST", f"/api/v1/offers/{two['id']}/claims", {"quantity": 1}, 201)
    inc = await a.call("POST", f"/api/v1/needs/{need['id']}/claims", {"quantity": 1}, 201)

    async def settled() -> bool:
        status, _ = await b.call("GET", f"/api/v1/claims/{inc['id']}", expect=None)
        matches = (await b.call("GET", "/api/v1/matches"))["items"]
        return status == 200 and len(matches) == 2

    await wait_until(settled, what="A's claim and both matches at B")
    return a, b, {"one": one["id"], "two": two["id"], "need": need["id"],
                  "out": out["id"], "inc": inc["id"]}


async def test_hidden_listing_is_gone_from_every_read_and_write(world):
    a, b, ids = world
    await b.call("POST", "/api/v1/moderation", {"id": ids["one"], "action": "hide"}, 201)
    before = entries(b)
    assert await problem(b, "GET", f"/api/v1/offers/{ids['one']}") == (404, "not-found")
    assert await problem(b, "POST", f"/api/v1/offers/{ids['one']}/claims",
                         {"quantity": 1}) == (404, "not-found")
    listed = (await b.call("GET", "/api/v1/offers?status=all"))["items"]
    assert ids["one"] not in {i["id"] for i in listed}
    matches = (await b.call("GET", "/api/v1/matches"))["items"]
    assert [m["offer"]["id"] for m in matches] == [ids["two"]]
    assert entries(b) == before  # nothing written by the refused claim
    # A moderator can hide a claim too: it leaves lists and reads by id.
    await b.call("POST", "/api/v1/moderation", {"id": ids["inc"], "action": "hide"}, 201)
    assert await problem(b, "GET", f"/api/v1/claims/{ids['inc']}") == (404, "not-found")
    assert await problem(b, "POST", f"/api/v1/claims/{ids['inc']}/accept", {}) == \
        (404, "not-found")
    assert ids["inc"] not in {c["id"] for c in (await b.call("GET", "/api/v1/claims"))["items"]}
    assert entries(b) == before
    # Lifted: readable again.
    for target in (ids["one"], ids["inc"]):
        await b.call("DELETE", f"/api/v1/moderation/{target}", expect=204)
    assert (await b.call("GET", f"/api/v1/offers/{ids['one']}"))["id"] == ids["one"]
    assert (await b.call("GET", f"/api/v1/claims/{ids['inc']}"))["id"] == ids["inc"]


async def test_blocked_author_is_gone_from_every_read_and_write(world, cluster):
    a, b, ids = world
    await b.call("POST", "/api/v1/blocks", {"author": a.id, "reason": "abuse"}, 201)
    before = entries(b)
    for offer in (ids["one"], ids["two"]):
        assert await problem(b, "GET", f"/api/v1/offers/{offer}") == (404, "not-found")
        # a coordinator's claim on a blocked author's offer: refused (was 201)
        assert await problem(b, "POST", f"/api/v1/offers/{offer}/claims",
                             {"quantity": 1}) == (404, "not-found")
    assert (await b.call("GET", "/api/v1/offers?status=all"))["items"] == []
    assert (await b.call("GET", "/api/v1/matches"))["items"] == []
    # claims with a blocked party: not listed, not readable, not answerable
    assert (await b.call("GET", "/api/v1/claims"))["items"] == []
    for claim in (ids["out"], ids["inc"]):
        assert await problem(b, "GET", f"/api/v1/claims/{claim}") == (404, "not-found")
    assert await problem(b, "POST", f"/api/v1/claims/{ids['inc']}/accept", {}) == \
        (404, "not-found")
    assert await problem(b, "POST", f"/api/v1/claims/{ids['out']}/fulfil", {}) == \
        (404, "not-found")
    assert entries(b) == before

    # The event stream replays nothing about A but the block itself.
    sentinel = await b.create(**{**OFFER, "title": "sentinel"})
    events = await sse_until(b, sentinel["id"])
    about_a = [e for e in events if any(x in json.dumps(e["data"])
                                        for x in (a.id, ids["one"], ids["two"]))]
    assert about_a and all(e["type"] == "listing" and e["data"]["change"] == "blocked"
                           and e["data"]["listing"] is None for e in about_a), about_a
    assert not [e for e in events if e["type"] in ("match", "claim")]

    # What B serves to peers leaves A out: a node that joins B later never gets A's log.
    c = await cluster.add("c")
    await cluster.peer(b, c)
    late = await b.create(**{**OFFER, "title": "after C joined"})
    await wait_until(lambda: c.has_offer(late["id"]), what="B's sentinel at C")
    assert c.head_seq(a.public) == 0

    # Lifted: readable again.
    await b.call("DELETE", f"/api/v1/blocks/{a.id}", expect=204)
    assert (await b.call("GET", f"/api/v1/offers/{ids['one']}"))["id"] == ids["one"]
    assert (await b.call("GET", f"/api/v1/claims/{ids['inc']}"))["id"] == ids["inc"]


# -- crafted cursors ---------------------------------------------------------------------------


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


NESTED = base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1500).decode().rstrip("=")
CURSORS = {
    "above-2^63": {"/api/v1/offers": cursor([2**63 + 5, "ab" * 32]),
                   "/api/v1/needs": cursor([2**64, "ab" * 32]),
                   "/api/v1/claims": cursor([2**63, "ab" * 32]),
                   "/api/v1/matches": cursor([2**64])},
    "nested": dict.fromkeys(("/api/v1/offers", "/api/v1/claims", "/api/v1/matches"), NESTED),
    "long": dict.fromkeys(("/api/v1/offers", "/api/v1/claims", "/api/v1/matches"),
                          cursor([1, "a" * 4000])),
    "bool": {"/api/v1/matches": cursor([True]), "/api/v1/offers": cursor([True, "x"])},
}


@pytest.mark.parametrize("case", sorted(CURSORS))
async def test_crafted_cursors_are_bad_requests(make_node, case):
    node = await make_node()
    await node.create("offer")
    before = node.home.snapshot()
    for path, text in CURSORS[case].items():
        r = await node.get(f"{path}?cursor={text}", role="reader")
        await expect_problem(r, 400, "invalid-parameter", field="cursor")
    assert node.home.snapshot() == before


# -- sealed boxes --------------------------------------------------------------------------------


async def test_a_sealed_box_copied_into_another_claim_shows_nothing(cluster):
    a, b, c = await cluster.start(3)  # A claims B's offer; C copies A's box
    await cluster.peer(a, b)
    await cluster.peer(b, c)
    offer = await b.create(**OFFER)
    await wait_until(lambda: a.has_offer(offer["id"]), what="B's offer at A")
    secret = {"address": "Hinterhof 7, ring twice"}
    real = await a.call("POST", f"/api/v1/offers/{offer['id']}/claims",
                        {"message": "A here", "private": secret}, 201)
    assert real["private"] == secret
    (payload,) = a.query("SELECT payload FROM entries WHERE id = ?",
                         (bytes.fromhex(real["id"]),))[0]
    box = decode(payload)["sealed"]

    def c_appends(kind: str, content: dict[str, Any]) -> str:
        ledger = open_ledger(c.config.db_path, c.identity)
        try:
            return ledger.transaction(lambda conn: ledger.append_local(conn, kind, content)
                                      ).id.hex()
        finally:
            ledger.close()

    async def seen_at_b(claim_id: str) -> dict[str, Any] | None:
        status, body = await b.call("GET", f"/api/v1/claims/{claim_id}", expect=None)
        return body if status == 200 else None

    copy = {"target": bytes.fromhex(offer["id"]), "target_author": b.public, "sealed": box}
    copied = c_appends("claim", copy)
    got = await wait_until(lambda: seen_at_b(copied), what="C's copied claim at B")
    assert got["private"] is None
    assert (await wait_until(lambda: seen_at_b(real["id"])))["private"] == secret
    # C claims A's seal key as its own: the key is then not one author's, so still nothing.
    c_appends("profile", {"name": "c", "seal_key": a.identity.seal_public()})
    again = c_appends("claim", copy)
    got = await wait_until(lambda: seen_at_b(again), what="C's second copy at B")
    assert got["private"] is None
    assert (await seen_at_b(copied))["private"] is None
    # Which of the two owns the key cannot be told, so A's own box shows nothing either
    # while C's profile claims it: nothing is shown rather than the wrong thing.
    assert (await seen_at_b(real["id"]))["private"] is None
