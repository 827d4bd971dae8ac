"""Categories that exist (issue 10): browsable, labelled in English and Spanish, a group's
own declared in its settings and published in its profile, typos refused with the
closest known paths; and dates that make sense on create and update.

Real nodes: two peers for the "Done when" items (`fod/bread` -> 422 naming `food/bread`;
a past `available_until` -> 422), each refusal checked to write nothing and to send
nothing to the peer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from federation_helpers import Cluster, FedNode, wait_until

from node.cli import main
from node.config import ConfigError, load_config
from node.services.values import rfc3339
from node.store.ledger import now_ms
from protocol import decode
from protocol.taxonomy import LABELS, LANGUAGES, STARTER_TAXONOMY

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
OFFER = {"title": "Bread", "category": "food/bread", "action": "transfer"}


def test_the_spec_lists_the_same_categories():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## 11. Categories"):text.index("## 12. Sealed fields")]
    rows = re.findall(r"^\| `([^`]+)` \|(.+)\|$", section, re.M)
    assert [(p, *(c.strip() for c in cells.split("|"))) for p, cells in rows] == [
        (p, *labels) for p, labels in LABELS.items()]
    assert all(len(labels) == len(LANGUAGES) for labels in LABELS.values())
    assert STARTER_TAXONOMY == {p: labels[0] for p, labels in LABELS.items()}


def test_config_refuses_malformed_vocabulary(tmp_path):
    for text, words in (('categories = ["Food Soup"]', "not a category path"),
                        ('units = ["kilos"]', "already known as 'kg'"),
                        ('units = ["Pallet"]', "not a unit code"),
                        ('units = [1]', "list of strings")):
        (tmp_path / "aidmesh.toml").write_text(text + "\n")
        with pytest.raises(ConfigError, match=words):
            load_config(tmp_path, env={})
    (tmp_path / "aidmesh.toml").write_text('categories = ["food/soup"]\n')
    assert load_config(tmp_path, env={"AIDMESH_UNITS": "pallet, sheaf"}).units == [
        "pallet", "sheaf"]


async def problem_and_nothing_sent(node: FedNode, peer: FedNode, method: str, path: str,
                                   body: dict, status: int, code: str, field: str) -> dict:
    """A refusal: the exact problem, nothing in A's file, nothing new at its peer."""
    before, at_peer = node.snapshot(), peer.snapshot()
    got, problem = await node.call(method, path, body, expect=None)
    assert got == status, problem
    assert problem["type"] == f"urn:aidmesh:problem:{code}" and problem["field"] == field
    assert node.snapshot() == before and peer.snapshot() == at_peer
    return problem


async def test_typo_category_and_past_dates_are_422_across_two_nodes(cluster: Cluster):
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    sentinel = await a.create("offer", **OFFER)
    await wait_until(lambda: b.has_offer(sentinel["id"]), what="peering works")
    problem = await problem_and_nothing_sent(a, b, "POST", "/api/v1/offers",
                                             {**OFFER, "category": "fod/bread"}, 422,
                                             "unknown-category", "category")
    assert problem["suggestions"][0] == "food/bread" and "'food/bread'" in problem["detail"]
    problem = await problem_and_nothing_sent(a, b, "POST", "/api/v1/needs",
                                             {**OFFER, "category": "food/bred"}, 422,
                                             "unknown-category", "category")
    assert problem["suggestions"][0] == "food/bread"
    past = rfc3339(now_ms() - 60_000)
    problem = await problem_and_nothing_sent(a, b, "POST", "/api/v1/offers",
                                             {**OFFER, "available_until": past}, 422,
                                             "in-the-past", "available_until")
    assert "in the past" in problem["detail"]
    problem = await problem_and_nothing_sent(
        a, b, "POST", "/api/v1/needs",
        {**OFFER, "available_from": "2099-01-02T00:00:00Z",
         "available_until": "2099-01-01T00:00:00Z"}, 422, "payload-schema", "available_until")
    assert "after available_until" in problem["detail"]
    # The same on update, against the fields the listing keeps.
    made = await a.create("offer", **{**OFFER, "available_from": "2099-01-01T00:00:00Z"})
    item = f"/api/v1/offers/{made['id']}"
    for body, code in (({"available_until": past}, "in-the-past"),
                       ({"available_until": "2098-12-31T00:00:00Z"}, "payload-schema")):
        await problem_and_nothing_sent(a, b, "PATCH", item, body, 422, code, "available_until")
    await problem_and_nothing_sent(a, b, "PATCH", item, {"category": "tols/hand"}, 422,
                                   "unknown-category", "category")
    # A well-formed path is checked; a malformed one is the protocol's schema error.
    await problem_and_nothing_sent(a, b, "POST", "/api/v1/offers",
                                   {**OFFER, "category": "Food Stuff"}, 422,
                                   "payload-schema", "category")


async def test_categories_browsable_and_a_groups_own_published_to_peers(cluster: Cluster):
    a = await cluster.add("a", start=False)
    a.config.categories = ["food/soup", "goods/bikes"]
    a.config.units = ["pallet"]
    await a.start()
    b = (await cluster.start(1))[0]
    await cluster.peer(a, b)
    # Published at start: a new profile carries the group's own vocabulary.
    profiles = a.query("SELECT payload FROM entries WHERE author = ? AND kind = 'profile' "
                       "ORDER BY seq", (a.public,))
    latest = decode(profiles[-1][0])
    assert latest["categories"] == ["food/soup", "goods/bikes"] and latest["units"] == [
        "pallet"] and latest["name"] == "a" and len(profiles) == 2
    soup = await a.create("offer", **{**OFFER, "category": "food/soup",
                                      "quantity": {"value": 3, "unit": "pallet"}})
    assert soup["category"] == "food/soup"
    # B shows A's categories, with who declared them ...
    async def shown() -> list | None:
        items = (await b.call("GET", "/api/v1/categories"))["items"]
        return [i for i in items if i["source"] == "peer"] or None
    peer = await wait_until(shown, what="A's categories at B")
    assert peer == [{"path": "food/soup", "parent": "food", "labels": {}, "source": "peer",
                     "groups": [a.id]},
                    {"path": "goods/bikes", "parent": "goods", "labels": {},
                     "source": "peer", "groups": [a.id]}]
    # ... and B cannot post in them until its own group declares them too.
    before, at_a = b.snapshot(), a.snapshot()
    status, problem = await b.call("POST", "/api/v1/offers",
                                   {**OFFER, "category": "food/soup"}, expect=None)
    assert status == 422 and problem["suggestions"] == ["food/soup"]
    assert a.id in problem["detail"] and "declare it" in problem["detail"]
    assert b.snapshot() == before and a.snapshot() == at_a
    items = (await a.call("GET", "/api/v1/categories"))["items"]
    assert items[0] == {"path": "food", "parent": None, "source": "starter", "groups": [],
                        "labels": {"en": "Food and drink", "es": "Comida y bebida",
                                   "ar": "طعام وشراب"}}
    assert [i["path"] for i in items if i["source"] == "group"] == ["food/soup",
                                                                    "goods/bikes"]
    assert len(items) == len(LABELS) + 2
    # A restart with the same settings publishes nothing new.
    await a.stop()
    await a.start()
    assert len(a.query("SELECT 1 FROM entries WHERE author = ? AND kind = 'profile'",
                       (a.public,))) == 2
    status, problem = await a.call("GET", "/api/v1/categories?lang=es", expect=None)
    assert status == 400 and problem["type"] == "urn:aidmesh:problem:unknown-parameter"


def test_cli_lists_categories_in_spanish(node_home, capsys):
    argv = ["--home", str(node_home.path)]
    assert main([*argv, "categories", "--lang", "es"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["food/bread", "Pan", "y", "bollería"]
    assert len(lines) == len(LABELS)
    assert main([*argv, "categories", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["labels"]["es"] == "Comida y bebida"
    before = node_home.snapshot()
    assert main([*argv, "need", "add", "--title", "x", "--category", "fod/bread"]) == 1
    err = capsys.readouterr().err
    assert "unknown category 'fod/bread'" in err and "'food/bread'" in err
    assert node_home.snapshot() == before


async def test_cli_uses_the_groups_own_categories(make_home, capsys):
    home = make_home("g", categories=["food/soup"])
    argv = ["--home", str(home.path)]
    assert main([*argv, "offer", "add", "--title", "Soup", "--category", "food/soup",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["category"] == "food/soup"
    assert main([*argv, "categories"]) == 0
    assert "food/soup" in capsys.readouterr().out.splitlines()[-1]
