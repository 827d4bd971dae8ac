"""Exchanges across real nodes: match -> claim (sealed details) -> accept -> fulfil.

Three real nodes on loopback (tests/federation_helpers.py); statuses must agree on every
node, concurrent claims can never over-commit, sealed details stay unreadable (and absent
from the SQLite file) on a relay, and bad requests are problems that write nothing. A
unit test checks that the exchange fold does not depend on the order logs arrive in.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h3
from conftest import make_log
from federation_helpers import Cluster, FedNode, wait_until

from node.cli import main
from node.services.ledger import open_ledger
from node.state.exchange import claim_status
from node.store.ledger import Ledger
from protocol import Identity

CELL_A = h3.latlng_to_cell(52.520, 13.405, 8)
CELL_B = h3.latlng_to_cell(52.535, 13.425, 8)  # about 2 km from CELL_A
NEED = {"title": "Bread for the soup kitchen", "category": "food", "action": "transfer",
        "urgency": "high", "radius_km": 5, "area": CELL_A,
        "quantity": {"value": 10, "unit": "loaves"}}
OFFER = {"title": "Loaves from the bakery", "category": "food/bread", "action": "transfer",
         "area": CELL_B, "quantity": {"value": 20, "unit": "loaves"}}




async def request(node: FedNode, method: str, path: str, body: Any = None,
                  token: str | None = None) -> tuple[int, str, Any]:
    """(status, content type, JSON body) of a client API request (admin by default)."""
    headers = {"Authorization": "Bearer " + (token or node.admin_token)}
    async with node.session.request(method, node.url + path, json=body,
                                    headers=headers) as r:
        text = await r.text()
        return r.status, r.content_type, (await r.json(content_type=None) if text else None)


async def token(node: FedNode, role: str) -> str:
    return (await node.call("POST", "/api/v1/tokens", {"role": role}, 201))["token"]


async def claim_on(node: FedNode, claim_id: str) -> dict[str, Any] | None:
    status, _, body = await request(node, "GET", f"/api/v1/claims/{claim_id}")
    return body if status == 200 else None


async def agree(nodes: list[FedNode], what: str, get, expect) -> None:
    """Poll until ``get(node)`` equals ``expect`` on every node."""
    async def check() -> bool:
        return all([await get(n) == expect for n in nodes])
    await wait_until(check, what=what)


def db_bytes(node: FedNode) -> bytes:
    path = node.config.db_path
    out = b""
    for p in (path, path.with_name(path.name + "-wal")):
        if p.exists():
            out += p.read_bytes()
    return out


async def three(cluster: Cluster) -> tuple[FedNode, FedNode, FedNode]:
    a, b, c = await cluster.start(3)
    await cluster.peer(a, b)
    await cluster.peer(b, c)
    await cluster.peer(a, c)
    return a, b, c


async def test_match_claim_accept_fulfil_across_three_nodes(cluster):
    a, b, c = await three(cluster)
    need = await a.create("need", **NEED)
    offer = await b.create("offer", **OFFER)
    assert need["status"] == "open" and offer["status"] == "open"

    # The match appears at A once B's offer has arrived.
    async def matched() -> dict | None:
        body = await a.call("GET", f"/api/v1/matches?need={need['id']}")
        return next((m for m in body["items"] if m["offer"]["id"] == offer["id"]), None)
    match = await wait_until(matched, what="match at A")
    assert 0 < match["distance_km"] < 5 and 0 < match["score"] <= 1
    local = await a.call("GET", "/api/v1/matches?local_only=true")
    assert [(m["need"]["id"], m["offer"]["id"]) for m in local["items"]] == \
        [(need["id"], offer["id"])]

    # A claims 8 of B's 20 loaves, with private details sealed to B.
    secret = "Hinterhof 7, Flat 3b, ring twice zq7x"
    claim = await a.call("POST", f"/api/v1/offers/{offer['id']}/claims", {
        "quantity": {"value": 8, "unit": "loaves"}, "message": "for Friday",
        "private": {"address": secret, "phone": "+49 30 1234567"}}, 201)
    assert claim["status"] == "pending" and claim["owner"] == b.id
    assert claim["claimant"] == a.id and claim["target_kind"] == "offer"
    assert claim["quantity"] == {"value": 8, "unit": "loaf"}
    assert claim["private"] == {"address": secret, "phone": "+49 30 1234567"}

    # B sees it incoming and can read the details; a reader token cannot.
    async def incoming() -> list:
        return (await b.call("GET", "/api/v1/claims?direction=incoming&status=pending"))["items"]
    items = await wait_until(incoming, what="claim at B")
    assert [i["id"] for i in items] == [claim["id"]]
    assert items[0]["private"] == {"address": secret, "phone": "+49 30 1234567"}
    status, _, seen = await request(b, "GET", f"/api/v1/claims/{claim['id']}",
                                    token=await token(b, "reader"))
    assert status == 200 and "private" not in seen
    assert (await b.call("GET", "/api/v1/claims?direction=outgoing"))["items"] == []

    # B accepts 5 of the 8, with a pickup address sealed to A.
    pickup = "Backstube, Oranienstr. 12, back door qv9w"
    accepted = await b.call("POST", f"/api/v1/claims/{claim['id']}/accept",
                            {"quantity": 5, "private": {"address": pickup}})
    assert accepted["status"] == "accepted"
    assert accepted["committed_quantity"] == {"value": 5, "unit": "loaf"}
    assert accepted["reply_private"] == {"address": pickup}

    async def offer_state(n: FedNode) -> tuple | None:
        o = await n.listing(offer["id"])
        return o and (o["status"], o["available_quantity"]["value"],
                      o["committed_quantity"]["value"])

    async def claim_state(n: FedNode) -> tuple | None:
        cl = await claim_on(n, claim["id"])
        return cl and (cl["status"], cl["committed_quantity"])

    await agree([a, b, c], "accept everywhere", offer_state, ("partly-committed", 15, 5))
    await agree([a, b, c], "claim accepted everywhere", claim_state,
                ("accepted", {"value": 5, "unit": "loaf"}))
    mine = await claim_on(a, claim["id"])
    assert mine["private"]["address"] == secret and mine["reply_private"] == {"address": pickup}

    # Both record the hand-over.
    await a.call("POST", f"/api/v1/claims/{claim['id']}/fulfil", {})
    await wait_until(lambda: claim_state(b), what="A's fulfil at B")
    await b.call("POST", f"/api/v1/claims/{claim['id']}/fulfil",
                 {"quantity": {"value": 5, "unit": "loaves"}})
    await agree([a, b, c], "fulfilled everywhere", claim_state,
                ("fulfilled", {"value": 5, "unit": "loaf"}))
    await agree([a, b, c], "offer after fulfil", offer_state, ("partly-committed", 15, 5))
    async def responses(n: FedNode) -> list | None:
        cl = await claim_on(n, claim["id"])
        return cl and sorted((r["kind"], r["by"]) for r in cl["responses"])
    await agree([a, b, c], "responses everywhere", responses,
                sorted([("accept", b.id), ("fulfil", a.id), ("fulfil", b.id)]))

    # C relays the claim but cannot read it, through the API or in its file.
    at_c = await claim_on(c, claim["id"])
    assert "private" not in at_c and "reply_private" not in at_c
    listed = await c.call("GET", "/api/v1/claims")
    assert [i["id"] for i in listed["items"]] == [claim["id"]]
    assert "private" not in listed["items"][0]
    assert (await c.call("GET", "/api/v1/claims?direction=incoming"))["items"] == []
    raw = db_bytes(c)
    assert bytes.fromhex(claim["id"]) in raw  # the entry is there...
    for text in (secret, pickup, "+49 30 1234567"):
        assert text.encode() not in raw  # ...its private details are not
        assert text.encode() not in db_bytes(a)  # not even the claimant keeps them in clear

    # Withdrawn: no more matches, no more claims.
    await b.call("DELETE", f"/api/v1/offers/{offer['id']}")
    async def unmatched() -> bool:
        return (await a.call("GET", "/api/v1/matches"))["items"] == []
    await wait_until(unmatched, what="match gone at A")


async def test_concurrent_claims_never_over_commit(cluster):
    a, b, c = await three(cluster)
    offer = await b.create("offer", **{**OFFER, "quantity": {"value": 10, "unit": "loaves"}})
    for n in (a, c):
        await wait_until(lambda n=n: n.has_offer(offer["id"]), what=f"offer at {n.name}")
    path = f"/api/v1/offers/{offer['id']}/claims"
    claim_a, claim_c = await asyncio.gather(
        a.call("POST", path, {"quantity": {"value": 7, "unit": "loaves"}}, 201),
        c.call("POST", path, {"quantity": 6}, 201))

    async def both_at_b() -> bool:
        body = await b.call("GET", "/api/v1/claims?direction=incoming")
        return len(body["items"]) == 2
    await wait_until(both_at_b, what="both claims at B")

    # Concurrent accepts: A's by default (what it asked, capped), C's explicitly 6.
    results = await asyncio.gather(
        request(b, "POST", f"/api/v1/claims/{claim_a['id']}/accept", {}),
        request(b, "POST", f"/api/v1/claims/{claim_c['id']}/accept", {"quantity": 6}))
    statuses = sorted(r[0] for r in results)
    committed = sum(r[2]["committed_quantity"]["value"] for r in results if r[0] == 200)
    assert committed <= 10
    if statuses == [200, 409]:  # A's 7 went first: C's explicit 6 no longer fits
        refused = next(r for r in results if r[0] == 409)
        assert refused[1] == "application/problem+json"
        assert refused[2]["type"] == "urn:aidmesh:problem:not-enough"
        again = await b.call("POST", f"/api/v1/claims/{claim_c['id']}/accept", {})
        assert again["committed_quantity"]["value"] == 3
    else:  # C's 6 went first: A's default is capped at the 4 left
        assert statuses == [200, 200] and committed == 10

    async def totals(n: FedNode) -> tuple | None:
        o = await n.listing(offer["id"])
        return o and (o["status"], o["committed_quantity"]["value"],
                      o["available_quantity"]["value"])
    await agree([a, b, c], "fully committed everywhere", totals, ("committed", 10, 0))
    for n in (a, b, c):
        claims = [await claim_on(n, cid) for cid in (claim_a["id"], claim_c["id"])]
        assert sum(cl["committed_quantity"]["value"] for cl in claims) == 10
        rows = n.query("SELECT committed FROM listings WHERE id = ?", (offer["id"],))
        assert rows == [("10",)]

    # Nothing is left: a third claim is refused; fulfilling both makes it fulfilled.
    status, ctype, body = await request(a, "POST", path, {"quantity": 1})
    assert (status, ctype, body["type"]) == (
        409, "application/problem+json", "urn:aidmesh:problem:nothing-available"), body
    for cid in (claim_a["id"], claim_c["id"]):
        await b.call("POST", f"/api/v1/claims/{cid}/fulfil", {})
    await agree([a, b, c], "fulfilled everywhere", totals, ("fulfilled", 10, 0))


async def test_bad_requests_are_problems_and_write_nothing(cluster):
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    need = await a.create("need", **NEED)
    offer = await b.create("offer", **OFFER)
    gone = await b.create("offer", **{**OFFER, "title": "gone"})
    await b.call("DELETE", f"/api/v1/offers/{gone['id']}")
    for entry_id, kind in ((offer["id"], "offer"), (gone["id"], "offer")):
        async def arrived(entry_id=entry_id, kind=kind) -> bool:
            got = await a.listing(entry_id, kind)
            return got is not None and (entry_id != gone["id"] or got["status"] == "withdrawn")
        await wait_until(arrived, what="B's offers at A")
    claims = f"/api/v1/offers/{offer['id']}/claims"
    claim = await a.call("POST", claims, {"quantity": 2}, 201)
    await wait_until(lambda: claim_on(b, claim["id"]), what="claim at B")
    a_reader, b_reader = await token(a, "reader"), await token(b, "reader")

    def own_log(n: FedNode) -> list:
        return n.query("SELECT seq, id FROM entries WHERE author = ? ORDER BY seq",
                       (n.public,))

    cases = [
        (a, "POST", claims, {"quantity": 1}, a_reader, 403, "forbidden"),
        (a, "POST", f"/api/v1/needs/{need['id']}/claims", {}, None, 422, "own-listing"),
        (a, "POST", claims, {"quantity": 21}, None, 409, "not-enough"),
        (a, "POST", claims, {"quantity": {"value": 1, "unit": "kg"}}, None, 422,
         "unit-mismatch"),
        (a, "POST", claims, {"quantity": 0}, None, 422, "invalid-field"),
        (a, "POST", claims, {"private": {"ssn": "x"}}, None, 422, "unknown-field"),
        (a, "POST", claims, {"private": {"address": 5}}, None, 422, "invalid-field"),
        (a, "POST", claims, {"colour": "red"}, None, 422, "unknown-field"),
        (a, "POST", f"/api/v1/offers/{'0' * 64}/claims", {}, None, 404, "not-found"),
        (a, "POST", f"/api/v1/needs/{offer['id']}/claims", {}, None, 404, "not-found"),
        (a, "POST", f"/api/v1/offers/{gone['id']}/claims", {}, None, 409, "withdrawn"),
        (a, "POST", f"/api/v1/claims/{claim['id']}/decline", {}, None, 403, "not-owner"),
        (a, "POST", f"/api/v1/claims/{claim['id']}/accept", {}, None, 403, "not-owner"),
        (a, "POST", f"/api/v1/claims/{claim['id']}/fulfil", {}, None, 409, "not-accepted"),
        (b, "POST", f"/api/v1/claims/{claim['id']}/fulfil", {}, None, 409, "not-accepted"),
        (b, "POST", f"/api/v1/claims/{claim['id']}/accept", {"quantity": 21}, None, 409,
         "not-enough"),
        (b, "POST", f"/api/v1/claims/{claim['id']}/accept", {"reason": "x"}, None, 422,
         "unknown-field"),
        (b, "POST", f"/api/v1/claims/{claim['id']}/accept", {}, b_reader, 403, "forbidden"),
        (b, "POST", f"/api/v1/claims/{'1' * 64}/accept", {}, None, 404, "not-found"),
        (b, "POST", "/api/v1/claims/nothex/decline", {}, None, 404, "not-found"),
        (b, "GET", "/api/v1/claims?direction=sideways", None, None, 400, "invalid-parameter"),
        (b, "GET", "/api/v1/claims?status=maybe", None, None, 400, "invalid-parameter"),
        (b, "GET", "/api/v1/claims?nope=1", None, None, 400, "unknown-parameter"),
        (b, "GET", "/api/v1/matches?local_only=yes", None, None, 400, "invalid-parameter"),
        (b, "GET", "/api/v1/matches?cursor=zz", None, None, 400, "invalid-parameter"),
        (b, "GET", f"/api/v1/claims/{'2' * 64}", None, None, 404, "not-found"),
    ]
    before = {n.name: own_log(n) for n in (a, b)}
    for node, method, path, body, tok, expect, code in cases:
        status, ctype, got = await request(node, method, path, body, tok)
        assert (status, ctype) == (expect, "application/problem+json"), (path, body, got)
        assert got["type"] == f"urn:aidmesh:problem:{code}", (path, body, got)
        assert got["detail"]
    assert {n.name: own_log(n) for n in (a, b)} == before

    # A decline, then neither an accept nor a second decline is possible.
    declined = await b.call("POST", f"/api/v1/claims/{claim['id']}/decline", {"reason": "sorry"})
    assert declined["status"] == "declined"
    after = own_log(b)
    for action in ("accept", "decline"):
        status, ctype, got = await request(b, "POST", f"/api/v1/claims/{claim['id']}/{action}",
                                           {})
        assert (status, ctype, got["type"]) == (
            409, "application/problem+json", "urn:aidmesh:problem:not-pending"), got
    assert own_log(b) == after


async def test_claim_before_owner_profile_is_a_clear_409(cluster):
    a, b = await cluster.start(2)
    # B's offer reaches A through a direct ingest of the offer only, without the profile:
    # simulate by posting to A a claim on an offer whose author A has no profile for.
    offer_author = Identity.generate()
    entries = make_log(offer_author, [("offer", {"title": "t", "category": "food",
                                                 "action": "transfer"})])
    await a.node.store.write(lambda c: a.node.store.ledger.ingest(c, offer_author.public,
                                                                  entries))
    path = f"/api/v1/offers/{entries[0].id.hex()}/claims"
    before = a.query("SELECT count(*) FROM entries")
    status, ctype, body = await request(a, "POST", path, {"private": {"phone": "123"}})
    assert (status, ctype) == (409, "application/problem+json")
    assert body["type"] == "urn:aidmesh:problem:no-seal-key" and "profile" in body["detail"]
    assert a.query("SELECT count(*) FROM entries") == before
    # Without private details the claim goes through (no quantity: the whole listing).
    made = await a.call("POST", path, {}, 201)
    assert made["quantity"] is None and made["private"] is None


# -- the fold does not depend on arrival order --------------------------------------------


def _state(ledger: Ledger) -> dict[str, Any]:
    conn = ledger.conn
    listings = [tuple(r) for r in conn.execute(
        "SELECT id, committed, fulfilled, available FROM listings ORDER BY id")]
    claims = {}
    for row in conn.execute("SELECT * FROM claims ORDER BY id").fetchall():
        got = claim_status(conn, row)
        claims[row["id"]] = (got["status"], got["committed"])
    responses = [tuple(r) for r in conn.execute(
        "SELECT id, kind, committed FROM responses ORDER BY id")]
    return {"listings": listings, "claims": claims, "responses": responses}


def test_fold_is_order_independent(tmp_path):
    owner, x, y = Identity.generate(), Identity.generate(), Identity.generate()
    o_log = make_log(owner, [("offer", {"title": "bread", "category": "food/bread",
                                        "action": "transfer",
                                        "quantity": {"value": "10", "unit": "loaves"}})])
    offer = o_log[0].id
    ref = {"target": offer}
    x_log = make_log(x, [("claim", {**ref, "target_author": owner.public,
                                    "quantity": {"value": "7", "unit": "loaves"}})])
    y_log = make_log(y, [("claim", {**ref, "target_author": owner.public,
                                    "quantity": {"value": "8", "unit": "loaves"}}),
                         ("claim", {**ref, "target_author": owner.public})])
    cx, cy, cy2 = x_log[0].id, y_log[0].id, y_log[1].id
    # The owner: accept X's claim without naming a quantity (the claim's 7 counts), then
    # Y's asking 6 (only 3 are left), decline Y's second and then accept it (nothing).
    o_log += make_log(owner, [
        ("accept", {**ref, "claim": cx, "claim_author": x.public}),
        ("accept", {**ref, "claim": cy, "claim_author": y.public,
                    "quantity": {"value": "6", "unit": "loaves"}}),
        ("decline", {**ref, "claim": cy2, "claim_author": y.public}),
        ("accept", {**ref, "claim": cy2, "claim_author": y.public}),
        ("fulfil", {**ref, "claim": cy, "claim_author": y.public}),
    ], previous=o_log[-1])
    # X fulfils before (in some orders) the owner's accept is even known.
    x_log += make_log(x, [("fulfil", {**ref, "claim": cx, "claim_author": x.public})],
                      previous=x_log[-1])
    logs = {"o": o_log, "x": x_log, "y": y_log}
    orders = [("o", "x", "y"), ("x", "y", "o"), ("y", "o", "x"), ("x", "o", "y")]
    states = []
    for i, order in enumerate(orders):
        ledger = open_ledger(tmp_path / f"{i}.db", Identity.generate())
        try:
            for name in order:
                log = logs[name]
                # Split each log in two deliveries so logs interleave mid-way.
                for part in (log[: len(log) // 2 or 1], log[len(log) // 2 or 1:]):
                    if part:
                        ledger.transaction(
                            lambda c, p=part, lg=ledger: lg.ingest(c, p[0].author, p))
            states.append(_state(ledger))
            ledger.rebuild()
            assert _state(ledger) == states[-1], f"rebuild differs for order {order}"
        finally:
            ledger.close()
    assert all(s == states[0] for s in states[1:]), states
    state = states[0]
    assert state["listings"] == [(offer.hex(), "10", "10", 0.0)]
    assert state["claims"] == {cx.hex(): ("fulfilled", "7"), cy.hex(): ("fulfilled", "3"),
                               cy2.hex(): ("declined", None)}


def test_cli_claims_and_matches(make_home, capsys):
    home = make_home("owner")
    argv = ["--home", str(home.path)]
    assert main([*argv, "offer", "add", "--title", "Bread", "--category", "food/bread",
                 "--quantity", "10 loaves", "--area", CELL_B, "--json"]) == 0
    offer = bytes.fromhex(json.loads(capsys.readouterr().out)["id"])
    other = Identity.generate()
    log = make_log(other, [
        ("profile", {"name": "Other", "seal_key": other.seal_public()}),
        ("need", {"title": "Bread please", "category": "food", "action": "transfer",
                  "area": CELL_A, "urgency": "critical"}),
        ("claim", {"target": offer, "target_author": home.identity.public,
                   "quantity": {"value": "4", "unit": "loaves"}, "message": "hello"}),
        ("claim", {"target": offer, "target_author": home.identity.public}),
    ])
    home.ingest(log)
    first, second = log[2].id.hex(), log[3].id.hex()
    assert main([*argv, "claim", "list", "--direction", "incoming"]) == 0
    out = capsys.readouterr().out
    assert first[:12] in out and second[:12] in out and "pending" in out
    assert "Bread" in out and "4 loaves" in out  # the listing's title, the asked quantity
    # A unique prefix of 8+ hex digits names a claim, as in git.
    assert main([*argv, "claim", "accept", first[:10], "--quantity", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"accepted claim {first[:12]}") and "3 loaf" in out
    assert main([*argv, "claim", "decline", second, "--reason", "all gone"]) == 0
    capsys.readouterr()
    assert main([*argv, "claim", "list", "--json"]) == 0
    items = {i["id"]: i for i in map(json.loads, capsys.readouterr().out.splitlines())}
    assert items[first]["status"] == "accepted"
    assert items[first]["committed_quantity"] == {"value": 3, "unit": "loaf"}
    assert items[second]["status"] == "declined"
    # A refused answer is one line on stderr and nothing written.
    count = home.entry_count()
    assert main([*argv, "claim", "accept", second]) == 1
    assert "declined" in capsys.readouterr().err
    assert home.entry_count() == count
    assert main([*argv, "match", "list"]) == 0
    out = capsys.readouterr().out
    assert log[1].id.hex()[:12] in out and offer.hex()[:12] in out


async def test_live_exchange_responses_match_openapi(make_node):
    from test_openapi import call

    node = await make_node()
    offer = await node.create("offer", body=OFFER)
    other = Identity.generate()
    log = make_log(other, [
        ("profile", {"name": "Other", "seal_key": other.seal_public()}),
        ("need", {"title": "Bread please", "category": "food", "action": "transfer",
                  "area": CELL_A, "quantity": {"value": "3", "unit": "loaves"}}),
        ("offer", {"title": "Soup", "category": "food/meals", "action": "transfer"}),
        ("claim", {"target": bytes.fromhex(offer["id"]), "target_author": node.home.identity.public,
                   "quantity": {"value": "4", "unit": "loaves"}}),
    ])
    node.home.ingest(log)
    need_id, soup, incoming = log[1].id.hex(), log[2].id.hex(), log[3].id.hex()
    claims = "/api/v1/claims"
    made = await call(node, "POST", f"/api/v1/needs/{need_id}/claims",
                      "/api/v1/needs/{id}/claims", 201,
                      json={"quantity": 2, "message": "m", "private": {"name": "N"}})
    assert made["private"] == {"name": "N"}
    soup_claims = (f"/api/v1/offers/{soup}/claims", "/api/v1/offers/{id}/claims")
    await call(node, "POST", *soup_claims, 201, json={})
    # the soup has no quantity, so a claim cannot name one
    await call(node, "POST", *soup_claims, 422, "invalid-field", json={"quantity": 1})
    await call(node, "POST", *soup_claims, 400, "malformed-json", data=b"{",
               headers={"Content-Type": "application/json"})
    await call(node, "POST", f"/api/v1/offers/{offer['id']}/claims",
               "/api/v1/offers/{id}/claims", 403, "forbidden", json={}, role="reader")
    page = await call(node, "GET", f"{claims}?direction=all&limit=1", claims, 200)
    assert page["next_cursor"]
    await call(node, "GET", f"{claims}?cursor={page['next_cursor']}", claims, 200)
    await call(node, "GET", f"{claims}?status=pending&target={offer['id']}", claims, 200,
               role="reader")
    await call(node, "GET", f"{claims}/{incoming}", claims + "/{id}", 200, role="reader")
    one = claims + "/{id}"
    await call(node, "POST", f"{claims}/{incoming}/accept", one + "/accept", 200,
               json={"quantity": {"value": 3, "unit": "loaves"}, "private": {"notes": "x"}})
    await call(node, "POST", f"{claims}/{incoming}/fulfil", one + "/fulfil", 200, json={})
    await call(node, "POST", f"{claims}/{incoming}/fulfil", one + "/fulfil", 409,
               "already-fulfilled", json={})
    await call(node, "POST", f"{claims}/{made['id']}/decline", one + "/decline", 403,
               "not-owner", json={})  # our own claim on another group's need
    await call(node, "GET", f"{claims}/{'0' * 64}", one, 404, "not-found")
    matches = await call(node, "GET", "/api/v1/matches?origin=local", "/api/v1/matches", 200)
    assert [(m["need"]["id"], m["offer"]["id"]) for m in matches["items"]] == \
        [(need_id, offer["id"])]
    await call(node, "GET", f"/api/v1/matches?need={need_id}&limit=1&local_only=true",
               "/api/v1/matches", 200, role="reader")
    await call(node, "GET", "/api/v1/matches?origin=nobody", "/api/v1/matches", 400,
               "invalid-parameter")
    await call(node, "GET", "/api/v1/matches", "/api/v1/matches", 401, "unauthorized",
               role=None)
