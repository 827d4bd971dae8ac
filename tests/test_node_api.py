"""The client API against a real app, a real server on 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import h3
import pytest
from conftest import NEED, OFFER, expect_problem, make_log, next_ms, wait_for
from yarl import URL

from node.services.values import parse_time
from node.store.ledger import now_ms, verify_log
from protocol import Identity, decode, verify_run

OFFERS = "/api/v1/offers"
NEEDS = "/api/v1/needs"


def rfc(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hours(n: float) -> str:
    return rfc(datetime.now(UTC) + timedelta(hours=n))


async def ids(node, path: str, role: str = "reader", **params) -> list[str]:
    query = "&".join(f"{k}={quote(str(v))}" for k, v in params.items())
    body = await node.json("GET", f"{path}?{query}" if query else path, role=role)
    assert body["next_cursor"] is None, "use a bigger limit in this test"
    return [item["id"] for item in body["items"]]


# -- operations endpoints -----------------------------------------------------------------


async def test_healthz_needs_no_token(node):
    r = await node.get("/healthz", role=None)
    assert r.status == 200
    assert await r.json() == {"status": "ok", "node": node.node_id,
                              "projector": {"lag_entries": 0, "lag_seconds": 0.0}}
    assert r.headers["X-Request-Id"]


async def test_request_id_is_echoed_or_made(node):
    r = await node.get("/healthz", role=None, headers={"X-Request-Id": "client-42.a_b"})
    assert r.headers["X-Request-Id"] == "client-42.a_b"
    r = await node.get("/healthz", role=None, headers={"X-Request-Id": "bad id with spaces"})
    made = r.headers["X-Request-Id"]
    assert made and made != "bad id with spaces"
    r = await node.get(OFFERS, role=None, headers={"X-Request-Id": "trace-7"})
    body = await expect_problem(r, 401, "unauthorized")
    assert body["request_id"] == "trace-7"


async def test_metrics_is_prometheus_text(node):
    await node.json("GET", OFFERS, role="reader")
    await node.create("offer")
    r = await node.get("/metrics", role=None)
    assert r.status == 200
    assert r.content_type == "text/plain"
    text = await r.text()
    assert "# TYPE aidmesh_http_requests_total counter" in text
    assert 'aidmesh_http_requests_total{method="GET",route="/api/v1/offers",status="200"} 1.0' \
        in text
    assert 'aidmesh_entries_stored_total{origin="local"} 1.0' in text
    assert "aidmesh_http_request_seconds_bucket" in text


async def test_node_info(node):
    await node.create("offer")
    await node.create("need")
    body = await node.json("GET", "/api/v1/node", role="reader")
    assert body["id"] == node.node_id
    assert body["name"] == node.home.config.name
    assert body["seal_key"] == node.home.identity.seal_public().hex()
    assert body["protocol_version"] == 1
    assert body["counts"]["offers"] == 1 and body["counts"]["needs"] == 1
    assert body["counts"]["entries"] == 3  # profile + offer + need
    assert body["counts"]["logs"] == 1 and body["counts"]["forks"] == 0


async def test_unknown_route_is_404_problem(node):
    r = await node.get("/api/v1/nothing-here", role=None)
    await expect_problem(r, 404, "not-found")
    r = await node.get("/federation/v1/nothing-here", role=None)
    assert r.status == 404  # never the web app's HTML page
    assert "html" not in r.content_type


async def test_wrong_method_is_405_problem_with_allow(node):
    before = node.home.snapshot()
    r = await node.request("PUT", OFFERS, json=OFFER)
    await expect_problem(r, 405, "method-not-allowed")
    assert set(r.headers["Allow"].split(",")) >= {"GET", "POST"}
    r = await node.request("POST", "/healthz", role=None)
    await expect_problem(r, 405)
    assert node.home.snapshot() == before


# -- create and read ------------------------------------------------------------------------


async def test_create_offer_answers_201_once_durable(node):
    before = node.home.entry_count()
    body = dict(OFFER, description="Sourdough, baked this morning", area="881f1d4811fffff",
                available_from="2026-01-01T08:00:00Z", available_until=hours(5),
                tags=["vegan", "bakery"], language="en", quantity={"value": 2.5, "unit": "kg"})
    r = await node.post(OFFERS, json=body, role="coordinator")
    assert r.status == 201, await r.text()
    created = await r.json()
    assert r.headers["Location"] == f"{OFFERS}/{created['id']}"
    # Acknowledged means committed: another connection to the file sees the entry now.
    assert node.home.entry_count() == before + 1
    assert node.home.query("SELECT kind FROM entries WHERE id = ?",
                           (bytes.fromhex(created["id"]),)) == [("offer",)]
    assert created["kind"] == "offer"
    assert created["origin"] == node.node_id
    assert created["status"] == "open"
    assert created["quantity"] == {"value": 2.5, "unit": "kg"}
    assert created["tags"] == ["vegan", "bakery"]
    assert created["area"] == "881f1d4811fffff"
    assert created["available_from"] == "2026-01-01T08:00:00.000Z"
    assert parse_time(created["available_until"], "t") == parse_time(body["available_until"], "t")
    assert created["created"] == created["updated"]
    for key in ("title", "description", "category", "action", "language"):
        assert created[key] == body[key]
    got = await node.json("GET", f"{OFFERS}/{created['id']}", role="reader")
    assert got == created


async def test_create_need_with_need_fields(node):
    need = await node.create("need", urgency="critical", radius_km=15)
    assert need["kind"] == "need" and need["urgency"] == "critical" and need["radius_km"] == 15
    assert (await node.json("GET", f"{NEEDS}/{need['id']}", role="reader")) == need
    # an offer id is not a need
    offer = await node.create("offer")
    r = await node.get(f"{NEEDS}/{offer['id']}", role="reader")
    await expect_problem(r, 404, "not-found")


async def test_quantity_value_as_decimal_string(node):
    offer = await node.create("offer", quantity={"value": "0.125", "unit": "l"})
    assert offer["quantity"] == {"value": 0.125, "unit": "l"}
    entry = node.home.query("SELECT payload FROM entries WHERE id = ?",
                            (bytes.fromhex(offer["id"]),))[0][0]
    assert decode(entry)["quantity"] == {"value": "0.125", "unit": "l"}


async def test_get_unknown_or_malformed_id_is_404(node):
    r = await node.get(f"{OFFERS}/{'ab' * 32}", role="reader")
    await expect_problem(r, 404, "not-found")
    r = await node.get(f"{OFFERS}/not-an-id", role="reader")
    await expect_problem(r, 404, "not-found", field="id")


# -- rejected requests write nothing ------------------------------------------------------

JSON_CT = {"Content-Type": "application/json"}
BIG = {**OFFER, "description": "x" * (300 * 1024)}
REJECTED_CREATE = [
    # (description, kwargs for the request, role, status, code, field)
    ("malformed json", {"data": b'{"title": "x",', "headers": JSON_CT},
     "coordinator", 400, "malformed-json", None),
    ("not utf-8", {"data": b'\xff\xfe{}', "headers": JSON_CT},
     "coordinator", 400, "malformed-json", None),
    ("lone surrogate", {"data": b'{"title": "\\ud800", "category": "food", "action": "use"}',
                        "headers": JSON_CT},
     "coordinator", 400, "malformed-json", None),
    ("nested too deep", {"data": b"[" * 100_000, "headers": JSON_CT},
     "coordinator", 400, "malformed-json", None),
    ("not json content type", {"data": json.dumps(OFFER), "headers": {"Content-Type": "text/csv"}},
     "coordinator", 415, "unsupported-media-type", None),
    ("array body", {"json": [OFFER]}, "coordinator", 422, "invalid-body", None),
    ("unknown field", {"json": {**OFFER, "phone": "555-1234"}}, "coordinator", 422,
     "unknown-field", "phone"),
    ("need field on an offer", {"json": {**OFFER, "urgency": "high"}}, "coordinator", 422,
     "unknown-field", "urgency"),
    ("title wrong type", {"json": {**OFFER, "title": 5}}, "coordinator", 422, None, "title"),
    ("title empty", {"json": {**OFFER, "title": ""}}, "coordinator", 422, None, "title"),
    ("missing title", {"json": {"category": "food", "action": "use"}}, "coordinator", 422,
     "payload-missing-field", "title"),
    ("bad action", {"json": {**OFFER, "action": "sell"}}, "coordinator", 422, None, "action"),
    ("bad category", {"json": {**OFFER, "category": "Food Stuff"}}, "coordinator", 422, None,
     "category"),
    ("null value", {"json": {**OFFER, "description": None}}, "coordinator", 422,
     "invalid-field", "description"),
    ("tags not a list", {"json": {**OFFER, "tags": "vegan"}}, "coordinator", 422, None, "tags"),
    ("negative quantity", {"json": {**OFFER, "quantity": {"value": -1, "unit": "kg"}}},
     "coordinator", 422, "invalid-field", "quantity.value"),
    ("quantity bool", {"json": {**OFFER, "quantity": {"value": True, "unit": "kg"}}},
     "coordinator", 422, "invalid-field", "quantity.value"),
    ("quantity extra key", {"json": {**OFFER, "quantity": {"value": 1, "unit": "kg", "x": 1}}},
     "coordinator", 422, "invalid-field", "quantity"),
    ("time without zone", {"json": {**OFFER, "available_until": "2030-01-01T00:00:00"}},
     "coordinator", 422, "invalid-field", "available_until"),
    ("time a number", {"json": {**OFFER, "available_until": 1893456000000}},
     "coordinator", 422, "invalid-field", "available_until"),
    ("window backwards", {"json": {**OFFER, "available_from": "2030-01-02T00:00:00Z",
                                   "available_until": "2030-01-01T00:00:00Z"}},
     "coordinator", 422, None, "available_until"),
    ("coordinates as area", {"json": {**OFFER, "area": "52.52,13.40"}}, "coordinator", 422,
     "area-not-h3", "area"),
    ("area too precise", {"json": {**OFFER, "area": h3.latlng_to_cell(52.52, 13.40, 10)}},
     "coordinator", 422, "area-too-precise", "area"),
    ("oversize body", {"json": BIG}, "coordinator", 413, "body-too-large", None),
    ("missing token", {"json": OFFER}, None, 401, "unauthorized", None),
    ("reader role", {"json": OFFER}, "reader", 403, "forbidden", None),
]


@pytest.mark.parametrize("what,kwargs,role,status,code,field", REJECTED_CREATE,
                         ids=[r[0] for r in REJECTED_CREATE])
async def test_rejected_create_writes_nothing(node, what, kwargs, role, status, code, field):
    before = node.home.snapshot()
    r = await node.post(OFFERS, role=role, **kwargs)
    await expect_problem(r, status, code, field)
    assert node.home.snapshot() == before
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bad_tokens_are_401(node):
    before = node.home.snapshot()
    for header in ("Bearer amt_000000000000_nope", "Bearer nonsense", "Basic dXNlcjpwYXNz",
                   "Bearer ", f"Bearer {node.home.admin_token}x"):
        r = await node.post(OFFERS, role=None, json=OFFER, headers={"Authorization": header})
        await expect_problem(r, 401, "unauthorized")
    assert node.home.snapshot() == before


async def test_need_rejects_bad_need_fields(node):
    before = node.home.snapshot()
    r = await node.post(NEEDS, json={**NEED, "urgency": "whenever"})
    await expect_problem(r, 422, field="urgency")
    r = await node.post(NEEDS, json={**NEED, "radius_km": 2.5})
    await expect_problem(r, 422, field="radius_km")
    r = await node.post(NEEDS, json={**NEED, "radius_km": 5000})
    await expect_problem(r, 422, field="radius_km")
    assert node.home.snapshot() == before


# -- listing: pagination and filters -------------------------------------------------------


async def test_pagination_with_cursor(node):
    made = [(await node.create("offer", title=f"Item {i}"))["id"] for i in range(11)]
    seen, pages, cursor = [], 0, None
    while True:
        path = f"{OFFERS}?limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = await node.json("GET", path, role="reader")
        pages += 1
        assert len(page["items"]) == (4 if page["next_cursor"] else 3)
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(i["id"] for i in seen) == sorted(made)
    keys = [(i["updated"], i["id"]) for i in seen]
    assert keys == sorted(keys, reverse=True)  # newest change first, stable across pages


async def test_pagination_exact_page_boundary_and_limits(node):
    for i in range(4):
        await node.create("offer", title=f"Thing {i}")
    first = await node.json("GET", f"{OFFERS}?limit=2", role="reader")
    second = await node.json("GET", f"{OFFERS}?limit=2&cursor={first['next_cursor']}",
                             role="reader")
    assert len(second["items"]) == 2 and second["next_cursor"] is None
    full = await node.json("GET", f"{OFFERS}?limit=4", role="reader")
    assert full["next_cursor"] is None and len(full["items"]) == 4
    for bad in ("limit=0", "limit=201", "limit=ten", "cursor=%%%", "cursor=WzEsMl0"):
        r = await node.get(f"{OFFERS}?{bad}", role="reader")
        await expect_problem(r, 400, "invalid-parameter", bad.split("=")[0])


async def test_unknown_query_parameter_is_400(node):
    r = await node.get(f"{OFFERS}?colour=red", role="reader")
    body = await expect_problem(r, 400, "unknown-parameter", "colour")
    assert "category" in body["detail"]


async def test_full_text_search(node):
    bread = await node.create("offer", title="Sourdough bread", category="food/bread")
    ladder = await node.create("offer", title="Ladder to lend", category="tools/hand",
                               action="lend", description="Aluminium, three metres")
    cafe = await node.create("offer", title="Café vouchers", category="money",
                             tags=["coffee"])
    assert await ids(node, OFFERS, q="bread") == [bread["id"]]
    assert await ids(node, OFFERS, q="sourd") == [bread["id"]]  # word prefix
    assert await ids(node, OFFERS, q="ALUMINIUM") == [ladder["id"]]  # description, any case
    assert await ids(node, OFFERS, q="ladder metres") == [ladder["id"]]  # every word
    assert await ids(node, OFFERS, q="ladder bread") == []
    assert await ids(node, OFFERS, q="cafe") == [cafe["id"]]  # diacritics folded
    assert await ids(node, OFFERS, q="coffee") == [cafe["id"]]  # tags
    assert await ids(node, OFFERS, q='bread" OR "x*') == []  # FTS syntax is just words
    assert await ids(node, OFFERS, q='(bread*) -') == [bread["id"]]
    everything = {bread["id"], ladder["id"], cafe["id"]}
    assert set(await ids(node, OFFERS, q='""')) == everything  # no word: no text filter
    r = await node.get(OFFERS, params={"q": "x" * 501}, role="reader")
    await expect_problem(r, 400, "invalid-parameter", "q")


async def test_full_text_search_follows_updates(node):
    offer = await node.create("offer", title="Spare tent")
    await node.json("PATCH", f"{OFFERS}/{offer['id']}", json={"title": "Spare sleeping bag"})
    assert await ids(node, OFFERS, q="tent") == []
    assert await ids(node, OFFERS, q="sleeping") == [offer["id"]]


async def test_category_prefix_on_whole_segments(make_node):
    node = await make_node(categories=["foodstuff"])  # the group's own category
    food = await node.create("offer", category="food")
    bread = await node.create("offer", category="food/bread")
    stuff = await node.create("offer", category="foodstuff")
    await node.create("offer", category="tools/hand")
    assert set(await ids(node, OFFERS, category="food")) == {food["id"], bread["id"]}
    assert set(await ids(node, OFFERS, category="food/")) == {food["id"], bread["id"]}
    assert await ids(node, OFFERS, category="food/bread") == [bread["id"]]
    assert await ids(node, OFFERS, category="foodstuff") == [stuff["id"]]
    assert await ids(node, OFFERS, category="foo") == []


async def test_near_and_radius(node):
    lat, lng = 52.52, 13.405
    centre = h3.latlng_to_cell(lat, lng, 8)
    cells = {
        "centre": centre,
        "3km": h3.latlng_to_cell(lat + 0.027, lng, 8),
        "50km": h3.latlng_to_cell(lat + 0.45, lng, 8),
        "far": h3.latlng_to_cell(48.85, 2.35, 8),  # Paris, ~880 km
    }
    made = {name: (await node.create("offer", area=cell))["id"] for name, cell in cells.items()}
    await node.create("offer", title="No area at all")
    coarse = (await node.create("offer", area=h3.cell_to_parent(centre, 5)))["id"]

    async def near(radius=None):
        params = {"near": centre, "limit": 50}
        if radius is not None:
            params["radius_km"] = radius
        return set(await ids(node, OFFERS, **params))

    assert await near(1) >= {made["centre"]}
    assert made["3km"] not in await near(1)
    assert await near(10) - {coarse} == {made["centre"], made["3km"]}  # default radius 10
    assert await near() - {coarse} == {made["centre"], made["3km"]}
    assert await near(100) - {coarse} == {made["centre"], made["3km"], made["50km"]}
    assert await near(1000) - {coarse} == set(made.values())
    assert coarse in await near(30)  # a coarse cell counts at its centre
    for bad in ("near=52.5,13.4", "near=8f1f1d4811fffff", f"near={centre}&radius_km=-1",
                f"near={centre}&radius_km=1001", "radius_km=1001"):
        r = await node.get(f"{OFFERS}?{bad}", role="reader")
        await expect_problem(r, 400, "invalid-parameter")
    # radius_km alone is checked (above) but filters nothing: no schema ties it to near
    assert len(await ids(node, OFFERS, radius_km=5)) == len(await ids(node, OFFERS))


async def test_status_open_expired_withdrawn(node):
    open_ = await node.create("offer", title="Open one", available_until=hours(2))
    forever = await node.create("offer", title="No end")
    # A past end is refused on create (issue 10): this one ends a moment from now.
    expired = await node.create("offer", title="Gone stale", available_until=hours(0.0001),
                                available_from=hours(-3))
    withdrawn = await node.create("offer", title="Taken down")
    await node.json("DELETE", f"{OFFERS}/{withdrawn['id']}", role="coordinator")

    async def gone() -> bool:
        got = await node.json("GET", f"{OFFERS}/{expired['id']}", role="reader")
        return got["status"] == "expired"
    await wait_for(gone, what="the offer to expire")
    assert set(await ids(node, OFFERS)) == {open_["id"], forever["id"]}  # open by default
    assert set(await ids(node, OFFERS, status="open")) == {open_["id"], forever["id"]}
    assert await ids(node, OFFERS, status="expired") == [expired["id"]]
    assert await ids(node, OFFERS, status="withdrawn") == [withdrawn["id"]]
    assert len(await ids(node, OFFERS, status="all")) == 4
    r = await node.get(f"{OFFERS}?status=closed", role="reader")
    await expect_problem(r, 400, "invalid-parameter", "status")


async def test_origin_local_all_and_node_id(node):
    mine = await node.create("offer", title="Ours")
    other = Identity.generate()
    theirs = make_log(other, [
        ("profile", {"name": "Other group"}),
        ("offer", {"title": "Theirs", "category": "food", "action": "transfer"}),
        ("need", {"title": "Their need", "category": "food", "action": "transfer"}),
    ])
    node.home.ingest(theirs)
    their_offer = theirs[1].id.hex()
    assert await ids(node, OFFERS, origin="local") == [mine["id"]]
    assert set(await ids(node, OFFERS, origin="all")) == {mine["id"], their_offer}
    assert set(await ids(node, OFFERS)) == {mine["id"], their_offer}
    assert await ids(node, OFFERS, origin=other.node_id) == [their_offer]
    assert await ids(node, OFFERS, origin=node.node_id) == [mine["id"]]
    assert await ids(node, NEEDS, origin="local") == []
    assert len(await ids(node, NEEDS, origin=other.node_id)) == 1
    got = await node.json("GET", f"{OFFERS}/{their_offer}", role="reader")
    assert got["origin"] == other.node_id and got["title"] == "Theirs"
    r = await node.get(f"{OFFERS}?origin=elsewhere", role="reader")
    await expect_problem(r, 400, "invalid-parameter", "origin")


async def test_cannot_change_another_nodes_listing(node):
    other = Identity.generate()
    theirs = make_log(other, [("offer", {"title": "Theirs", "category": "food",
                                         "action": "transfer"})])
    node.home.ingest(theirs)
    before = node.home.snapshot()
    path = f"{OFFERS}/{theirs[0].id.hex()}"
    await expect_problem(await node.patch(path, json={"title": "Mine now"}), 403, "not-origin")
    await expect_problem(await node.delete(path), 403, "not-origin")
    assert node.home.snapshot() == before


async def test_updated_since(node):
    old = await node.create("offer", title="Old")
    await next_ms(parse_time(old["updated"], "t"))
    since = rfc(datetime.now(UTC))
    await next_ms(parse_time(since, "t"))
    new = await node.create("offer", title="New")
    assert await ids(node, OFFERS, updated_since=since) == [new["id"]]
    await node.json("PATCH", f"{OFFERS}/{old['id']}", json={"description": "still here"})
    assert set(await ids(node, OFFERS, updated_since=since)) == {old["id"], new["id"]}
    r = await node.get(f"{OFFERS}?updated_since=yesterday", role="reader")
    await expect_problem(r, 400, "invalid-parameter", "updated_since")


# -- update and withdraw ---------------------------------------------------------------------


async def test_patch_window_is_checked_against_the_kept_fields(node):
    offer = await node.create("offer", available_from="2030-01-02T00:00:00Z",
                              available_until="2030-01-05T00:00:00Z")
    before = node.home.snapshot()
    r = await node.request("PATCH", f"{OFFERS}/{offer['id']}", role="coordinator",
                           json={"available_until": "2030-01-01T00:00:00Z"})
    await expect_problem(r, 422, "payload-schema", "available_until")
    assert node.home.snapshot() == before


async def test_patch_appends_update_and_changes_fields(node):
    offer = await node.create("offer", description="Rye", tags=["a"])
    await next_ms(parse_time(offer["updated"], "t"))
    before = node.home.entry_count()
    changed = await node.json("PATCH", f"{OFFERS}/{offer['id']}", role="coordinator",
                              json={"title": "Rye bread", "quantity": {"value": 5,
                                                                        "unit": "loaves"}})
    assert node.home.entry_count() == before + 1
    assert node.home.query("SELECT kind FROM entries ORDER BY seq DESC LIMIT 1") == [("update",)]
    assert changed["id"] == offer["id"]
    assert changed["title"] == "Rye bread"
    assert changed["quantity"] == {"value": 5, "unit": "loaf"}  # normalised
    assert changed["description"] == "Rye" and changed["tags"] == ["a"]  # untouched
    assert changed["created"] == offer["created"]
    assert changed["updated"] > offer["updated"]
    assert await node.json("GET", f"{OFFERS}/{offer['id']}", role="reader") == changed


async def test_patch_need_and_expiry_through_update(node):
    need = await node.create("need", urgency="low")
    changed = await node.json("PATCH", f"{NEEDS}/{need['id']}",
                              json={"urgency": "critical", "available_until": hours(0.0001)})
    assert changed["urgency"] == "critical"

    async def gone() -> bool:
        got = await node.json("GET", f"{NEEDS}/{need['id']}", role="reader")
        return got["status"] == "expired"
    await wait_for(gone, what="the need to expire")
    assert await ids(node, NEEDS, status="expired") == [need["id"]]


REJECTED_PATCH = [
    ("malformed json", {"data": b"{", "headers": JSON_CT},
     "coordinator", 400, "malformed-json", None),
    ("empty change", {"json": {}}, "coordinator", 422, "invalid-body", None),
    ("unknown field", {"json": {"owner": "me"}}, "coordinator", 422, "unknown-field", "owner"),
    ("need field on offer", {"json": {"radius_km": 3}}, "coordinator", 422, "unknown-field",
     "radius_km"),
    ("wrong type", {"json": {"title": ["x"]}}, "coordinator", 422, None, "title"),
    ("null", {"json": {"title": None}}, "coordinator", 422, "invalid-field", "title"),
    ("oversize", {"json": {"description": "y" * (300 * 1024)}}, "coordinator", 413,
     "body-too-large", None),
    ("missing token", {"json": {"title": "x"}}, None, 401, "unauthorized", None),
    ("reader role", {"json": {"title": "x"}}, "reader", 403, "forbidden", None),
]


@pytest.mark.parametrize("what,kwargs,role,status,code,field", REJECTED_PATCH,
                         ids=[r[0] for r in REJECTED_PATCH])
async def test_rejected_patch_writes_nothing(node, what, kwargs, role, status, code, field):
    offer = await node.create("offer")
    before = node.home.snapshot()
    r = await node.patch(f"{OFFERS}/{offer['id']}", role=role, **kwargs)
    await expect_problem(r, status, code, field)
    assert node.home.snapshot() == before


async def test_patch_or_delete_unknown_is_404(node):
    before = node.home.snapshot()
    await expect_problem(await node.patch(f"{OFFERS}/{'cd' * 32}", json={"title": "x"}), 404)
    await expect_problem(await node.delete(f"{NEEDS}/{'cd' * 32}"), 404)
    await expect_problem(await node.delete(f"{NEEDS}/xyz"), 404)
    assert node.home.snapshot() == before


async def test_withdraw_then_changes_are_409(node):
    offer = await node.create("offer")
    gone = await node.json("DELETE", f"{OFFERS}/{offer['id']}", role="coordinator")
    assert gone["status"] == "withdrawn"
    assert node.home.query("SELECT kind FROM entries ORDER BY seq DESC LIMIT 1") == \
        [("withdraw",)]
    assert (await node.json("GET", f"{OFFERS}/{offer['id']}", role="reader"))["status"] == \
        "withdrawn"
    assert await ids(node, OFFERS) == []
    before = node.home.snapshot()
    r = await node.patch(f"{OFFERS}/{offer['id']}", json={"title": "Back again"})
    await expect_problem(r, 409, "withdrawn")
    r = await node.delete(f"{OFFERS}/{offer['id']}")
    await expect_problem(r, 409, "withdrawn")
    assert node.home.snapshot() == before


async def test_delete_needs_coordinator(node):
    need = await node.create("need")
    before = node.home.snapshot()
    await expect_problem(await node.delete(f"{NEEDS}/{need['id']}", role=None), 401)
    await expect_problem(await node.delete(f"{NEEDS}/{need['id']}", role="reader"), 403)
    assert node.home.snapshot() == before
    await node.json("DELETE", f"{NEEDS}/{need['id']}", role="coordinator")


# -- logs ----------------------------------------------------------------------------------


async def test_logs_and_entries_verify(node):
    offer = await node.create("offer")
    await node.json("PATCH", f"{OFFERS}/{offer['id']}", json={"title": "Changed"})
    await node.json("DELETE", f"{OFFERS}/{offer['id']}")
    await node.create("need")
    logs = (await node.json("GET", "/api/v1/logs", role="reader"))["logs"]
    assert logs == [{"author": node.node_id, "seq": 5,
                     "head": node.home.heads()[0][2].hex()}]

    # page through with after/limit, verifying each page as a run continuing the last
    previous, kinds, after = None, [], 0
    while after is not None:
        page = await node.json("GET", f"/api/v1/logs/{node.node_id}/entries?after={after}"
                               "&limit=2", role="reader")
        assert page["author"] == node.node_id
        items = [(bytes.fromhex(e["header"]), bytes.fromhex(e["payload"]))
                 for e in page["entries"]]
        if not items:
            break
        run = verify_run(items, previous=previous)
        for entry, raw in zip(run, page["entries"], strict=True):
            assert entry.id.hex() == raw["id"] and entry.seq == raw["seq"]
            assert entry.author == node.home.identity.public
            kinds.append(entry.kind)
        previous = run[-1]
        after = page["next_after"]
    assert kinds == ["profile", "offer", "update", "withdraw", "need"]
    assert previous.id.hex() == logs[0]["head"]


async def test_log_entries_errors_and_unknown_author(node):
    other = Identity.generate().node_id
    page = await node.json("GET", f"/api/v1/logs/{other}/entries", role="reader")
    assert page == {"author": other, "entries": [], "next_after": None}
    r = await node.get("/api/v1/logs/someone/entries", role="reader")
    await expect_problem(r, 404, "not-found", "author")
    for bad in ("after=-1", "limit=0", "limit=501", "after=x", "since=1"):
        r = await node.get(f"/api/v1/logs/{node.node_id}/entries?{bad}", role="reader")
        await expect_problem(r, 400)
    await expect_problem(await node.get("/api/v1/logs", role=None), 401)


async def test_forks_empty(node):
    assert await node.json("GET", "/api/v1/forks", role="reader") == {"forks": []}


# -- tokens --------------------------------------------------------------------------------


async def test_token_lifecycle(node):
    made = await node.json("POST", "/api/v1/tokens", 201,
                           json={"role": "coordinator", "name": "bread bot"})
    assert made["role"] == "coordinator" and made["name"] == "bread bot"
    token = made["token"]
    assert token.startswith("amt_")
    # stored hashed: the secret is nowhere in the database
    raw = node.home.config.db_path.read_bytes()
    assert token.encode() not in raw and token.split("_", 2)[2].encode() not in raw

    await node.create("offer")  # sanity: the helper's own token
    r = await node.post(OFFERS, token=token, json=OFFER)
    assert r.status == 201
    listed = (await node.json("GET", "/api/v1/tokens"))["tokens"]
    row = next(t for t in listed if t["id"] == made["id"])
    assert row["revoked"] is None and set(row) == {"id", "name", "role", "created", "revoked"}

    r = await node.delete(f"/api/v1/tokens/{made['id']}")
    assert r.status == 204
    before = node.home.snapshot()
    await expect_problem(await node.post(OFFERS, token=token, json=OFFER), 401, "unauthorized")
    await expect_problem(await node.get(OFFERS, token=token), 401)
    assert node.home.snapshot() == before
    listed = (await node.json("GET", "/api/v1/tokens"))["tokens"]
    assert next(t for t in listed if t["id"] == made["id"])["revoked"] is not None
    await expect_problem(await node.delete(f"/api/v1/tokens/{made['id']}"), 404, "not-found")


async def test_roles_are_ordered(node):
    reader, coord = node.home.token("reader"), node.home.token("coordinator")
    assert (await node.get(OFFERS, token=reader)).status == 200
    assert (await node.get(OFFERS, token=coord)).status == 200
    await expect_problem(await node.post(OFFERS, token=reader, json=OFFER), 403, "forbidden")
    await expect_problem(await node.get("/api/v1/tokens", token=coord), 403, "forbidden")
    await expect_problem(await node.post("/api/v1/tokens", token=coord,
                                         json={"role": "admin"}), 403, "forbidden")
    await expect_problem(await node.delete("/api/v1/tokens/abc", token=reader), 403)


REJECTED_TOKEN = [
    ("malformed", {"data": b"role=admin", "headers": JSON_CT},
     "admin", 400, "malformed-json", None),
    ("not an object", {"json": "admin"}, "admin", 422, "invalid-body", None),
    ("unknown role", {"json": {"role": "root"}}, "admin", 422, "invalid-field", "role"),
    ("missing role", {"json": {"name": "x"}}, "admin", 422, "invalid-field", "role"),
    ("unknown field", {"json": {"role": "reader", "expires": 3}}, "admin", 422,
     "unknown-field", "expires"),
    ("name wrong type", {"json": {"role": "reader", "name": 7}}, "admin", 422,
     "invalid-field", "name"),
    ("name too long", {"json": {"role": "reader", "name": "n" * 101}}, "admin", 422,
     "invalid-field", "name"),
    ("oversize", {"json": {"role": "reader", "name": "n" * 300_000}}, "admin", 413, None, None),
    ("missing token", {"json": {"role": "reader"}}, None, 401, "unauthorized", None),
    ("coordinator", {"json": {"role": "reader"}}, "coordinator", 403, "forbidden", None),
]


@pytest.mark.parametrize("what,kwargs,role,status,code,field", REJECTED_TOKEN,
                         ids=[r[0] for r in REJECTED_TOKEN])
async def test_rejected_token_create_writes_nothing(node, what, kwargs, role, status, code,
                                                    field):
    before = node.home.snapshot()
    r = await node.post("/api/v1/tokens", role=role, **kwargs)
    await expect_problem(r, status, code, field)
    assert node.home.snapshot() == before


# -- open_read -----------------------------------------------------------------------------


async def test_anonymous_reads_are_off_by_default(node):
    for path in (OFFERS, NEEDS, "/api/v1/node", "/api/v1/logs"):
        r = await node.get(path, role=None)
        await expect_problem(r, 401, "unauthorized")


async def test_open_read_allows_anonymous_reads_only(make_node):
    node = await make_node(open_read=True)
    offer = await node.create("offer")
    before = node.home.snapshot()
    assert (await node.json("GET", OFFERS, role=None))["items"][0]["id"] == offer["id"]
    assert (await node.json("GET", f"{OFFERS}/{offer['id']}", role=None))["id"] == offer["id"]
    await node.json("GET", NEEDS, role=None)
    # open_read opens offers and needs only (README): everything else still needs a token
    for path in ("/api/v1/node", "/api/v1/logs", f"/api/v1/logs/{node.node_id}/entries",
                 "/api/v1/forks", "/api/v1/peers", "/api/v1/claims", "/api/v1/matches",
                 "/api/v1/events"):
        await expect_problem(await node.get(path, role=None), 401, "unauthorized")
    await expect_problem(await node.post(OFFERS, role=None, json=OFFER), 401)
    await expect_problem(await node.patch(f"{OFFERS}/{offer['id']}", role=None,
                                          json={"title": "x"}), 401)
    await expect_problem(await node.delete(f"{OFFERS}/{offer['id']}", role=None), 401)
    await expect_problem(await node.get("/api/v1/tokens", role=None), 401, "unauthorized")
    # a bad token is refused rather than treated as anonymous
    await expect_problem(await node.get(OFFERS, token="amt_000000000000_x"), 401)
    assert node.home.snapshot() == before


# -- durability and concurrency ----------------------------------------------------------------


async def test_acknowledged_offer_survives_restart(node):
    offer = await node.create("offer", title="Survivor")
    need = await node.create("need")
    await node.json("PATCH", f"{NEEDS}/{need['id']}", json={"urgency": "high"})
    node2 = await node.restart()
    assert (await node2.json("GET", f"{OFFERS}/{offer['id']}", role="reader")) == offer
    got = await node2.json("GET", f"{NEEDS}/{need['id']}", role="reader")
    assert got["urgency"] == "high"
    assert (await node2.json("GET", "/healthz", role=None))["node"] == node.node_id
    # the log continues where it stopped
    more = await node2.create("offer")
    assert node2.home.query("SELECT seq FROM entries WHERE id = ?",
                            (bytes.fromhex(more["id"]),)) == [(5,)]


async def test_concurrent_posts_make_one_contiguous_log(node):
    token = node.home.token("coordinator")

    async def post(i: int):
        kind = "offer" if i % 2 else "need"
        body = {**(OFFER if kind == "offer" else NEED), "title": f"Concurrent {i}"}
        r = await node.post(f"/api/v1/{kind}s", token=token, json=body)
        return r.status, await r.json()

    results = await asyncio.gather(*(post(i) for i in range(50)))
    assert [s for s, _ in results] == [201] * 50
    assert len({b["id"] for _, b in results}) == 50
    seqs = [s for (s,) in node.home.query("SELECT seq FROM entries ORDER BY seq")]
    assert seqs == list(range(1, 52))  # profile + 50
    conn = node.home.db()
    try:
        assert verify_log(conn, node.home.identity.public) == (51, None)
    finally:
        conn.close()
    page = await node.json("GET", f"/api/v1/logs/{node.node_id}/entries?limit=500",
                           role="reader")
    run = verify_run([(bytes.fromhex(e["header"]), bytes.fromhex(e["payload"]))
                      for e in page["entries"]], now_ms=now_ms())
    assert [e.seq for e in run] == list(range(1, 52))
    titles = {decode(e.payload).get("title") for e in run[1:]}
    assert titles == {f"Concurrent {i}" for i in range(50)}
    listed = await node.json("GET", f"{OFFERS}?limit=200&origin=local", role="reader")
    assert len(listed["items"]) == 25


# -- the edges of every request: problem instance, optional bodies -------------------------------

# RFC 3986 path-absolute of a URI reference: pchar ("%" only as pct-encoded) and "/".
URI_PATH = re.compile(r"^(/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+$")


@pytest.mark.parametrize("sent,instance", [
    ("/api/v1/offers/%C2%84", "/api/v1/offers/%C2%84"),
    ("/api/v1/offers/%00?x=%C2", "/api/v1/offers/%00"),
    ("/api/v1/claims/a%20b/decline", "/api/v1/claims/a%20b/decline"),
    ("/api/v1/needs/%zz", "/api/v1/needs/%25zz"),
    ("/api/v1/no/such/%F0%9F%8D%9E", "/api/v1/no/such/%F0%9F%8D%9E"),
])
async def test_problem_instance_is_the_path_as_sent(node, sent, instance):
    url = URL(node.url.rstrip("/") + sent, encoded=True)
    method = "POST" if sent.endswith("decline") else "GET"
    r = await node.client.session.request(method, url, headers=node.auth("admin"))
    body = await r.json(content_type=None)
    assert 400 <= r.status < 500 and r.content_type == "application/problem+json", body
    assert body["instance"] == instance
    assert URI_PATH.match(body["instance"]), body["instance"]


async def claimable(node) -> tuple[str, str]:
    """Another group's offer, and that group's pending claim on an offer of ours."""
    mine = await node.create("offer")
    other = Identity.generate()
    log = make_log(other, [
        ("profile", {"name": "Other", "seal_key": other.seal_public()}),
        ("offer", {"title": "Ladder", "category": "tools", "action": "lend"}),
        ("claim", {"target": bytes.fromhex(mine["id"]), "target_author": node.home.identity.public,
                   "quantity": {"value": "2", "unit": mine["quantity"]["unit"]}}),
    ])
    node.home.ingest(log)
    return log[1].id.hex(), log[2].id.hex()


async def test_action_bodies_may_be_left_out_whatever_the_content_type(node):
    theirs, claim = await claimable(node)
    # No body at all, no Content-Type: a claim on the whole offer (the body is optional).
    r = await node.post(f"/api/v1/offers/{theirs}/claims")
    assert r.status == 201, await r.text()
    # An empty body is no body, even when it says it is JSON (or anything else).
    r = await node.post(f"/api/v1/claims/{claim}/accept", data=b"",
                        headers={"Content-Type": "application/json"})
    assert r.status == 200, await r.text()
    r = await node.post(f"/api/v1/claims/{claim}/fulfil", data=b"",
                        headers={"Content-Type": "text/plain"})
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "fulfilled"


async def test_action_body_that_is_there_must_be_json(node):
    theirs, claim = await claimable(node)
    before = node.home.snapshot()
    for path in (f"/api/v1/offers/{theirs}/claims", f"/api/v1/claims/{claim}/decline"):
        r = await node.post(path, data=b"please", headers={"Content-Type": "text/plain"})
        await expect_problem(r, 415, "unsupported-media-type")
        r = await node.post(path, data=b"{", headers={"Content-Type": "application/json"})
        await expect_problem(r, 400, "malformed-json")
    assert node.home.snapshot() == before


async def test_bad_request_id_is_replaced_not_refused(node):
    for rid in ("", "has space", "x" * 65, "é"):
        r = await node.get("/api/v1/node", headers={"X-Request-Id": rid})
        assert r.status == 200
        assert r.headers["X-Request-Id"] != rid and re.match(r"^[0-9a-f]{16}$",
                                                            r.headers["X-Request-Id"])
