"""Units as a vocabulary (issue 10): normalised on input, matched and claimed only when
they convert, quantities compared and committed after exact conversion.

The vocabulary on its own (protocol/units.py, and that docs/protocol.md §9.7 lists the
same table), then real nodes: two peers for the "Done when" items (`loaves` meets
`loaf`; a need in kg meets an offer in g), one node for refusals, which must write
nothing, and remote entries with units nobody knows.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import expect_problem, make_log
from federation_helpers import Cluster, FedNode, wait_until

from node.cli import main
from protocol import Identity, units

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
NEED = {"title": "Bread for the soup kitchen", "category": "food", "action": "transfer",
        "quantity": {"value": 8, "unit": "loaf"}}
OFFER = {"title": "Loaves from the bakery", "category": "food/bread", "action": "transfer",
         "quantity": {"value": 20, "unit": "loaves"}}


# -- the vocabulary ---------------------------------------------------------------------------


def test_lookup_normalises_synonyms_plurals_and_case():
    assert units.lookup("loaves").code == "loaf"
    assert units.lookup(" Kilos ").code == "kg"
    assert units.lookup("LBS").code == "lb"
    assert units.lookup("raciones").code == "portion"
    assert units.lookup("bundles") is None and units.lookup("") is None
    assert units.lookup("kilos\t") is None  # only U+0020 is trimmed: the spec says so
    for unit in units.UNITS:
        assert units.UNIT_CODE_RE.match(unit.code), unit
        assert units.lookup(unit.code) is unit
        assert all(units.lookup(s) is unit for s in unit.synonyms)


def test_conversion_is_exact_then_truncated_to_three_decimals():
    d = Decimal
    assert units.convert(d("500"), "g", "kg") == d("0.5")
    assert units.convert(d("1"), "lb", "kg") == d("0.453")  # 0.45359237 truncated
    assert units.convert(d("1"), "kg", "lb") == d("2.204")  # 2.20462262...
    assert units.convert(d("2"), "dozen", "each") == d("24")
    assert units.convert(d("3"), "loaves", "loaf") == d("3")
    assert units.convert(d("0.001"), "g", "kg") == 0  # too small to state in kg
    assert units.convert(d("999999999999.999"), "t", "mg") == d("999999999999999000000")
    for a, b in (("kg", "l"), ("box", "loaf"), ("kg", "bundle"), ("bundle", "bundles")):
        assert units.convert(d("1"), a, b) is None and not units.compatible(a, b)
    assert units.convert(d("7"), "bundle", "bundle") == d("7")
    assert units.compatible("bundle", "bundle") and units.compatible("Kilos", "LB")


def test_closest_names_codes():
    assert units.closest("kilso") == ["kg"]
    assert "loaf" in units.closest("loafes")
    assert units.closest("pallett", ("pallet",)) == ["pallet"]


def test_the_spec_lists_the_same_units():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### 9.7 Units"):text.index("## 10. Areas")]
    rows = re.findall(r"^\| `([^`]+)` \| (\w+) \| `([^`]+)` \| ([0-9.]+) \| (.*) \|$",
                      section, re.M)
    assert [(c, dim, base, f, syn) for c, dim, base, f, syn in rows] == [
        (u.code, u.dimension, u.base, format(u.factor, "f"), ", ".join(u.synonyms))
        for u in units.UNITS]


# -- two real nodes ---------------------------------------------------------------------------


async def pair(cluster: Cluster) -> tuple[FedNode, FedNode]:
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    return a, b


async def match_of(node: FedNode, need_id: str, offer_id: str) -> dict | None:
    body = await node.call("GET", f"/api/v1/matches?need={need_id}")
    return next((m for m in body["items"] if m["offer"]["id"] == offer_id), None)


async def test_loaves_meets_loaf_and_the_claim_succeeds(cluster):
    a, b = await pair(cluster)
    need = await a.create("need", **NEED)
    offer = await b.create("offer", **OFFER)
    assert offer["quantity"] == {"value": 20, "unit": "loaf"}  # normalised on input
    match = await wait_until(lambda: match_of(a, need["id"], offer["id"]), what="match at A")
    assert match["covers"] == {"value": 8, "unit": "loaf"}
    claim = await a.call("POST", f"/api/v1/offers/{offer['id']}/claims",
                         {"quantity": {"value": 8, "unit": "Loaves"}}, 201)
    assert claim["quantity"] == {"value": 8, "unit": "loaf"}

    async def at_b() -> bool:
        status, _ = await b.call("GET", f"/api/v1/claims/{claim['id']}", expect=None)
        return status == 200
    await wait_until(at_b, what="claim at B")
    accepted = await b.call("POST", f"/api/v1/claims/{claim['id']}/accept", {})
    assert accepted["committed_quantity"] == {"value": 8, "unit": "loaf"}

    async def committed() -> bool:
        got = await a.listing(offer["id"])
        return got["committed_quantity"] == {"value": 8, "unit": "loaf"}
    await wait_until(committed, what="the accept at A")


async def test_a_need_in_kg_meets_an_offer_in_g_with_the_right_quantity(cluster):
    a, b = await pair(cluster)
    need = await a.create("need", title="Flour", category="food/pantry", action="transfer",
                          quantity={"value": 1, "unit": "kilos"})
    offer = await b.create("offer", title="Flour", category="food/pantry",
                           quantity={"value": 1500, "unit": "grams"})
    other = await b.create("offer", title="Flour in jars", category="food/pantry",
                           quantity={"value": 3, "unit": "jar"})
    assert (need["quantity"], offer["quantity"]) == ({"value": 1, "unit": "kg"},
                                                     {"value": 1500, "unit": "g"})
    match = await wait_until(lambda: match_of(a, need["id"], offer["id"]), what="match at A")
    assert match["covers"] == {"value": 1, "unit": "kg"}  # 1500 g, compared in kg
    assert await match_of(a, need["id"], other["id"]) is None  # jars never meet kg
    # A claims 0.75 kg of the offer in grams: written as 750 g; B accepts half a pound.
    claim = await a.call("POST", f"/api/v1/offers/{offer['id']}/claims",
                         {"quantity": {"value": 0.75, "unit": "kg"}}, 201)
    assert claim["quantity"] == {"value": 750, "unit": "g"}

    async def at_b() -> bool:
        status, _ = await b.call("GET", f"/api/v1/claims/{claim['id']}", expect=None)
        return status == 200
    await wait_until(at_b, what="claim at B")
    accepted = await b.call("POST", f"/api/v1/claims/{claim['id']}/accept",
                            {"quantity": {"value": 0.5, "unit": "lb"}})
    assert accepted["committed_quantity"] == {"value": 226.796, "unit": "g"}

    async def left() -> tuple | None:
        got = await a.listing(offer["id"])
        return got and (got["available_quantity"], got["status"])
    await wait_until(lambda: _eq(left, ({"value": 1273.204, "unit": "g"}, "partly-committed")),
                     what="the accept at A")
    after = await match_of(a, need["id"], offer["id"])
    assert after["covers"] == {"value": 1, "unit": "kg"}


async def _eq(get, expect) -> bool:
    return await get() == expect


# -- refusals on one node ---------------------------------------------------------------------


@pytest.mark.parametrize("unit,suggested", [("kilso", ["kg"]), ("loafs ", ["loaf"]),
                                            ("sheaves", [])])
async def test_unknown_unit_is_a_422_naming_the_closest(node, unit, suggested):
    before = node.home.snapshot()
    r = await node.post("/api/v1/offers", role="coordinator",
                        json={**OFFER, "quantity": {"value": 2, "unit": unit}})
    if unit == "loafs ":  # a synonym with a space around it is still the synonym
        assert r.status == 201 and (await r.json())["quantity"]["unit"] == "loaf"
        return
    body = await expect_problem(r, 422, "unknown-unit", "quantity.unit")
    assert body["suggestions"] == suggested
    assert all(s in body["detail"] for s in suggested) and "/api/v1/units" in body["detail"]
    assert node.home.snapshot() == before


async def test_declared_unit_is_accepted_and_listed(make_node):
    node = await make_node(units=["pallet"])
    made = await node.create("offer", quantity={"value": 2, "unit": "pallet"})
    assert made["quantity"] == {"value": 2, "unit": "pallet"}
    listed = await node.json("GET", "/api/v1/units", role="reader")
    mine = [u for u in listed["items"] if u["source"] == "group"]
    assert mine == [{"code": "pallet", "dimension": "count", "base": "pallet", "factor": "1",
                     "labels": {}, "synonyms": [], "source": "group"}]
    kg = next(u for u in listed["items"] if u["code"] == "kg")
    assert kg["base"] == "g" and kg["factor"] == "1000" and "kilos" in kg["synonyms"]
    assert kg["labels"] == {"en": "kilogram", "es": "kilogramo", "ar": "كيلوغرام"}


async def test_claim_in_a_unit_that_does_not_convert_writes_nothing(node):
    remote = Identity.generate()
    log = make_log(remote, [("offer", {"title": "Rice", "category": "food/pantry",
                                       "action": "transfer",
                                       "quantity": {"value": "3", "unit": "kg"}})])
    node.home.ingest(log)
    path = f"/api/v1/offers/{log[0].id.hex()}/claims"
    before = node.home.snapshot()
    for quantity, code, field in (({"value": 1, "unit": "l"}, "unit-mismatch", "quantity"),
                                  ({"value": 1, "unit": "kgz"}, "unknown-unit",
                                   "quantity.unit"),
                                  ({"value": 0.001, "unit": "g"}, "invalid-field",
                                   "quantity"),
                                  ({"value": 4, "unit": "kg"}, "not-enough", "quantity")):
        r = await node.post(path, role="coordinator", json={"quantity": quantity})
        await expect_problem(r, 409 if code == "not-enough" else 422, code, field)
    assert node.home.snapshot() == before
    made = await node.json("POST", path, 201, role="coordinator",
                           json={"quantity": {"value": 2.5, "unit": "lb"}})
    assert made["quantity"] == {"value": 1.133, "unit": "kg"}  # 1.13398... truncated


# -- units nobody knows ---------------------------------------------------------------------


async def test_remote_unknown_units_replicate_and_match_only_the_identical_unit(node):
    needer, giver = Identity.generate(), Identity.generate()
    item = {"category": "goods", "action": "transfer"}
    needs = make_log(needer, [
        ("need", {**item, "title": "Straw", "quantity": {"value": "2", "unit": "bundle"}}),
        ("need", {**item, "title": "Hay", "quantity": {"value": "2", "unit": "kilos"}})])
    offers = make_log(giver, [
        ("offer", {**item, "title": "Straw", "quantity": {"value": "5", "unit": "bundle"}}),
        ("offer", {**item, "title": "Sheaves", "quantity": {"value": "5", "unit": "sheaf"}}),
        ("offer", {**item, "title": "Hay", "quantity": {"value": "900", "unit": "G"}})])
    node.home.ingest(needs)
    node.home.ingest(offers)
    straw, hay = (e.id.hex() for e in needs)
    got = await node.json("GET", f"/api/v1/needs/{straw}", role="reader")
    assert got["quantity"] == {"value": 2, "unit": "bundle"}  # stored as written
    pairs = {(m["need"]["title"], m["offer"]["title"]): m["covers"] for m in (
        await node.json("GET", "/api/v1/matches?limit=50", role="reader"))["items"]}
    assert pairs == {("Straw", "Straw"): {"value": 2, "unit": "bundle"},
                     ("Hay", "Hay"): {"value": 0.9, "unit": "kilos"}}
    got = await node.json("GET", f"/api/v1/needs/{hay}", role="reader")
    assert got["quantity"] == {"value": 2, "unit": "kilos"}  # a known synonym, as written


# -- the command line -------------------------------------------------------------------------


def test_cli_normalises_units_and_lists_them(node_home, capsys):
    argv = ["--home", str(node_home.path)]
    assert main([*argv, "offer", "add", "--title", "Rice", "--category", "food/pantry",
                 "--quantity", "2 Kilos", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quantity"] == {"value": 2, "unit": "kg"}
    before = node_home.snapshot()
    assert main([*argv, "offer", "add", "--title", "Rice", "--category", "food/pantry",
                 "--quantity", "2 kilso"]) == 1
    err = capsys.readouterr().err
    assert "unknown unit 'kilso'" in err and "'kg'" in err and "(quantity.unit)" in err
    assert node_home.snapshot() == before
    assert main([*argv, "units", "--lang", "es"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("kg ") and "1000 g" in line and "kilogramo" in line
               for line in lines)
    assert main([*argv, "units", "--json"]) == 0
    codes = [json.loads(x)["code"] for x in capsys.readouterr().out.splitlines()]
    assert codes == [u.code for u in units.UNITS]
