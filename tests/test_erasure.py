"""Erasure erases everything derived (issue 14, finding 5) across three real nodes.

A phone number goes into an offer, into an update of it and into a claim message on it.
Each way of erasing (the author's redact, a moderator's local erase on every node, the
retention sweep on every node) must leave it nowhere: not in the API, not in any row,
and not in the bytes of any node's SQLite files as they lie on disk (main file, -wal,
-shm), before and after a checkpoint and after shutdown; the logs still verify, and a
node that pulls later never gets the text back.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from conftest import make_log
from federation_helpers import Cluster, FedNode, wait_until

from node.cli import main as cli
from node.services.ledger import open_ledger
from node.services.moderation import erase_expired
from node.services.values import rfc3339
from node.store.ledger import now_ms
from protocol import Identity, decode

PHONE = "Tel5550199x"  # one search-index word; its digits are what the scan looks for
NEEDLE = b"5550199"
OFFER = {"title": f"Bread, ask for Ana {PHONE}", "category": "food/bread",
         "action": "transfer", "quantity": {"value": 20, "unit": "loaves"},
         "description": f"ring {PHONE} at the back door"}


def files(node: FedNode) -> list[Any]:
    db = node.config.db_path
    return [p for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
            if p.exists()]


def leaks(node: FedNode) -> list[str]:
    """Which of the node's database files hold the needle, read as raw bytes."""
    return [p.name for p in files(node) if NEEDLE in p.read_bytes()]


def payload(node: FedNode, entry_id: str) -> bytes | None:
    rows = node.query("SELECT payload FROM entries WHERE id = ?", (bytes.fromhex(entry_id),))
    assert rows, f"{node.name} does not hold {entry_id}"
    return rows[0][0]


def checkpoint(node: FedNode) -> None:
    conn = sqlite3.connect(node.config.db_path)
    try:
        conn.execute("PRAGMA wal_checkpoint")
    finally:
        conn.close()


async def status_of(node: FedNode, path: str) -> int:
    status, _ = await node.call("GET", path, expect=None)
    return status


async def setup(cluster: Cluster, until: str) -> tuple[list[FedNode], dict[str, str]]:
    """A -- B -- C; A's offer with the phone, A's update adding it again, B's claim
    quoting it; everything at all three nodes. Returns the nodes and the entry ids."""
    a, b, c = await cluster.start(3)
    await cluster.line(a, b, c)
    offer = await a.create(**{**OFFER, "available_until": until})
    await a.call("PATCH", f"/api/v1/offers/{offer['id']}",
                 {"description": f"door code 4711, or call {PHONE}"})
    update = a.query("SELECT id FROM entries WHERE author = ? AND kind = 'update'",
                     (a.public,))[0][0].hex()
    await wait_until(lambda: b.has_offer(offer["id"]), what="offer at B")
    claim = await b.call("POST", f"/api/v1/offers/{offer['id']}/claims",
                         {"quantity": {"value": 2, "unit": "loaves"},
                          "message": f"we can pick up, call {PHONE}"}, 201)
    ids = {"offer": offer["id"], "update": update, "claim": claim["id"]}

    async def everywhere() -> bool:
        for node in (a, b, c):
            got = await node.listing(offer["id"])
            if got is None or "door code" not in got["description"]:
                return False
            if await status_of(node, f"/api/v1/claims/{claim['id']}") != 200:
                return False
        return True

    await wait_until(everywhere, what="offer, update and claim at A, B and C")
    for node in (a, b, c):  # the scan sees the text before: it is not looking elsewhere
        assert leaks(node), f"{node.name}: the phone number is not in its files at all"
    return [a, b, c], ids


async def erased_at(node: FedNode, ids: dict[str, str]) -> bool:
    return (all(payload(node, i) is None for i in ids.values())
            and await status_of(node, f"/api/v1/offers/{ids['offer']}") == 404
            and await status_of(node, f"/api/v1/claims/{ids['claim']}") == 404)


async def assert_nothing_left(nodes: list[FedNode], ids: dict[str, str], capsys) -> None:
    for node in nodes:
        await wait_until(lambda n=node: erased_at(n, ids), what=f"erasure at {node.name}")
    for node in nodes:
        listed = await node.call("GET", f"/api/v1/offers?q={PHONE}&status=all")
        assert listed["items"] == [], node.name
        assert node.query("SELECT count(*) FROM claims")[0][0] == 0, node.name
        assert node.query("SELECT count(*) FROM matches")[0][0] == 0, node.name
        # the headers stay: every entry is still there, only payloads are gone
        for entry_id in ids.values():
            assert node.query("SELECT count(*) FROM entries WHERE id = ?",
                              (bytes.fromhex(entry_id),))[0][0] == 1
    # On disk as it is now (the node's own doing, no checkpoint by the test): a -wal keeps
    # old page images until the node truncates it with a checkpoint after erasing ...
    assert {n.name: leaks(n) for n in nodes} == {n.name: [] for n in nodes}
    # ... after a checkpoint moves the log into the main file ...
    for node in nodes:
        checkpoint(node)
    assert {n.name: leaks(n) for n in nodes} == {n.name: [] for n in nodes}
    # ... and after shutdown; the logs still verify.
    for node in nodes:
        await node.stop()
        assert leaks(node) == [], node.name
        assert cli(["--home", str(node.home), "log", "verify"]) == 0
    assert capsys.readouterr().out.count("ok:") == len(nodes)


async def test_author_redact_erases_updates_claims_and_every_trace(cluster, capsys):
    nodes, ids = await setup(cluster, "2099-01-01T00:00:00Z")
    a, b, c = nodes
    await a.call("POST", f"/api/v1/offers/{ids['offer']}/redact", {"reason": "phone"}, 204)
    # Each of A's own entries about it is redacted in A's log, so a node that pulls the
    # log later can tell every missing payload was erased on purpose.
    redacted = set()
    for (raw,) in a.query("SELECT payload FROM entries WHERE author = ? AND kind = 'redact'",
                          (a.public,)):
        redacted.add(decode(raw)["target"].hex())
    withdraws = {r[0].hex() for r in a.query(
        "SELECT id FROM entries WHERE author = ? AND kind = 'withdraw'", (a.public,))}
    assert redacted == {ids["offer"], ids["update"], *withdraws}
    for node in nodes:
        await wait_until(lambda n=node: erased_at(n, ids), what=f"erasure at {node.name}")
    # A node that pulls later gets headers and no text back.
    late = await cluster.add("late")
    await cluster.peer(a, late)
    await wait_until(lambda: all(late.head_seq(n.public) == n.head_seq(n.public)
                                 for n in (a, b)), what="A's and B's logs at the late node")
    assert payload(late, ids["offer"]) is None and payload(late, ids["update"]) is None
    assert await late.listing(ids["offer"]) is None
    await assert_nothing_left([a, b, c, late], ids, capsys)


async def test_local_erase_by_each_admin_erases_every_trace(cluster, capsys):
    nodes, ids = await setup(cluster, "2099-01-01T00:00:00Z")
    a, b, c = nodes
    await b.call("POST", "/api/v1/moderation", {"id": ids["offer"], "action": "erase"}, 201)
    await wait_until(lambda: erased_at(b, ids), what="erasure at B")
    assert leaks(a) and leaks(c)  # local: the others still hold it (and the scan sees it)
    assert payload(a, ids["offer"]) is not None
    for node in (a, c):
        await node.call("POST", "/api/v1/moderation", {"id": ids["offer"], "action": "erase"},
                        201)
    await assert_nothing_left(nodes, ids, capsys)


async def test_retention_sweep_on_each_node_erases_every_trace(cluster, capsys):
    nodes, ids = await setup(cluster, rfc3339(now_ms() + 3_600_000))
    later = now_ms() + 31 * 86_400_000
    for node in nodes:
        assert await node.node.store.write(lambda conn: erase_expired(conn, 30, later)) == 1
    await assert_nothing_left(nodes, ids, capsys)


# -- erasing one entry that is not a listing --------------------------------------------------


@pytest.fixture
async def pair(cluster):
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    offer = await a.create(**{**OFFER, "title": "Bread", "description": "at the back"})
    await a.call("PATCH", f"/api/v1/offers/{offer['id']}",
                 {"description": f"call {PHONE}", "quantity": {"value": 30, "unit": "loaves"}})

    async def updated_at_b() -> bool:
        got = await b.listing(offer["id"])
        return got is not None and PHONE in got["description"]

    await wait_until(updated_at_b, what="offer and update at B")
    claim = await b.call("POST", f"/api/v1/offers/{offer['id']}/claims",
                         {"message": f"call {PHONE}"}, 201)

    async def claim_at_a() -> bool:
        return await status_of(a, f"/api/v1/claims/{claim['id']}") == 200

    await wait_until(claim_at_a, what="claim at A")
    return a, b, offer, claim


async def test_erasing_a_claim_drops_its_message_everywhere_on_the_node(pair):
    a, b, offer, claim = pair
    before = (await a.call("GET", f"/api/v1/claims/{claim['id']}"))["message"]
    assert PHONE in before
    await a.call("POST", "/api/v1/moderation", {"id": claim["id"], "action": "erase"}, 201)
    assert payload(a, claim["id"]) is None
    assert await status_of(a, f"/api/v1/claims/{claim['id']}") == 404
    assert all(i["id"] != claim["id"] for i in (await a.call("GET", "/api/v1/claims"))["items"])
    assert a.query("SELECT count(*) FROM claims WHERE message LIKE ?", (f"%{PHONE}%",)) \
        == [(0,)]
    # the offer stays, with nothing committed by the erased claim
    assert (await a.listing(offer["id"]))["status"] == "open"


async def test_erasing_an_update_refolds_its_listing_without_it(pair):
    a, b, offer, claim = pair
    update = a.query("SELECT id FROM entries WHERE author = ? AND kind = 'update'",
                     (a.public,))[0][0].hex()
    assert PHONE in (await b.listing(offer["id"]))["description"]
    await b.call("POST", "/api/v1/moderation", {"id": update, "action": "erase"}, 201)
    got = await b.listing(offer["id"])
    assert got["description"] == "at the back"
    assert got["quantity"] == {"value": 20, "unit": "loaf"}  # as normalised on input
    listed = await b.call("GET", f"/api/v1/offers?q={PHONE}")
    assert listed["items"] == []
    assert b.query("SELECT count(*) FROM listings WHERE fields LIKE ?", (f"%{PHONE}%",)) \
        == [(0,)]
    assert payload(a, update) is not None  # local erase: A keeps its own


async def test_late_claim_on_an_erased_offer_is_erased_on_arrival(cluster):
    a, c = await cluster.start(2)
    await cluster.peer(a, c)
    offer = await a.create(**OFFER)
    await a.call("POST", f"/api/v1/offers/{offer['id']}/redact", {}, 204)
    await wait_until(lambda: c.head_seq(a.public) == a.head_seq(a.public), what="redact at C")
    # A claim written before the redact reached its author arrives after it.
    claimant = Identity.generate()
    late = make_log(claimant, [("claim", {"target": bytes.fromhex(offer["id"]),
                                          "target_author": a.public,
                                          "message": f"call {PHONE}"})])
    ledger = open_ledger(c.config.db_path, c.identity)
    try:
        ledger.transaction(lambda conn: ledger.ingest(conn, claimant.public, late))
    finally:
        ledger.close()
    assert payload(c, late[0].id.hex()) is None
    assert await status_of(c, f"/api/v1/claims/{late[0].id.hex()}") == 404
    assert c.query("SELECT count(*) FROM claims")[0][0] == 0
    assert c.query("SELECT count(*) FROM erased WHERE id = ?", (late[0].id,)) == [(1,)]
