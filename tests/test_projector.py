"""Log first, fold after: entries are stored without projection work; a projector folds
them behind a cursor that commits with the fold.

Real SQLite files and real nodes. What is checked: ingest in the running node's mode
(deferred) stores entries, heads and missing marks but no listing; the projector folds
each entry exactly once, in log order, and its cursor moves with the fold; one entry
that cannot be folded does not stall the rest; a local post is read-your-writes while
a backlog waits; the lag shows in `aidmesh status`, /healthz and /metrics.
"""

from __future__ import annotations

import json
import random

from conftest import NEED, make_log
from federation_helpers import wait_until

from node.cli import main
from node.runtime import NODE
from node.store import backlog
from protocol import Identity

OFFER = {"title": "Fresh bread", "category": "food/bread", "action": "transfer",
         "quantity": {"value": "20", "unit": "loaves"}}  # as an entry's payload holds it


def _log(seed: int, offers: int) -> tuple[Identity, list]:
    ident = Identity.from_secret(random.Random(seed).randbytes(32))
    items = [("offer", {**OFFER, "title": f"offer {i}"}) for i in range(offers)]
    return ident, make_log(ident, items)


def _created_events(home) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (data,) in home.query("SELECT data FROM events WHERE type = 'listing'"):
        event = json.loads(data)
        if event["change"] == "created":
            counts[event["id"]] = counts.get(event["id"], 0) + 1
    return counts


def test_deferred_ingest_stores_only_and_the_projector_folds_once(node_home):
    ident, entries = _log(1, 60)
    ledger = node_home.ledger()
    try:
        ledger.deferred = True
        ledger.transaction(lambda c: ledger.ingest(c, ident.public, entries))
        assert ledger.pending
        assert node_home.query("SELECT count(*) FROM listings WHERE author = ?",
                               (ident.node_id,)) == [(0,)]
        assert node_home.query("SELECT seq FROM heads WHERE author = ?",
                               (ident.public,)) == [(60,)]
        lag = backlog.lag(ledger.conn)
        assert lag.entries == 60 and lag.seconds >= 0
        # In batches: the cursor moves with each, and stops where the fold stopped.
        assert ledger.transaction(lambda c: ledger.project(c, 10)) == 10
        assert node_home.query("SELECT count(*) FROM listings WHERE author = ?",
                               (ident.node_id,)) == [(10,)]
        assert backlog.lag(ledger.conn).entries == 50
        # A fold rolled back with its transaction leaves the cursor where it was.
        ledger.conn.execute("BEGIN IMMEDIATE")
        ledger.project(ledger.conn)
        ledger.conn.execute("ROLLBACK")
        assert backlog.lag(ledger.conn).entries == 50
        assert ledger.transaction(lambda c: ledger.project(c)) == 50
        assert ledger.transaction(lambda c: ledger.project(c)) == 0
    finally:
        ledger.close()
    titles = [t for (t,) in node_home.query("SELECT title FROM listings WHERE author = ? "
                                            "ORDER BY seq", (ident.node_id,))]
    assert titles == [f"offer {i}" for i in range(60)]
    created = _created_events(node_home)
    assert sorted(created) == sorted(e.id.hex() for e in entries)
    assert set(created.values()) == {1}


def test_log_order_per_author_updates_after_their_listing(node_home):
    ident = Identity.from_secret(b"\x07" * 32)
    first = make_log(ident, [("offer", OFFER)] * 40)  # past INLINE_MAX: left to the projector
    rest = make_log(ident, [("update", {"target": first[0].id, "set": {"title": "renamed"}}),
                            ("withdraw", {"target": first[0].id})], previous=first[-1])
    ledger = node_home.ledger()
    try:
        ledger.deferred = True
        ledger.transaction(lambda c: ledger.ingest(c, ident.public, first))
        ledger.transaction(lambda c: ledger.ingest(c, ident.public, rest))
        ledger.transaction(lambda c: ledger.project(c))
    finally:
        ledger.close()
    assert node_home.query("SELECT title, withdrawn FROM listings WHERE id = ?",
                           (first[0].id.hex(),)) == [("renamed", 1)]


def test_a_few_entries_with_nothing_waiting_are_folded_at_once(node_home):
    ident, entries = _log(5, 3)
    ledger = node_home.ledger()
    try:
        ledger.deferred = True
        ledger.transaction(lambda c: ledger.ingest(c, ident.public, entries))
        assert not ledger.pending and backlog.lag(ledger.conn).entries == 0
    finally:
        ledger.close()
    assert node_home.query("SELECT count(*) FROM listings WHERE author = ?",
                           (ident.node_id,)) == [(3,)]


def test_an_entry_that_cannot_be_folded_is_passed_over(node_home):
    ident, entries = _log(2, 40)
    ledger = node_home.ledger()
    try:
        ledger.deferred = True
        ledger.transaction(lambda c: ledger.ingest(c, ident.public, entries))
        # A fold that fails on the second entry (as a bug in the fold would).
        original = ledger.fold

        class Failing:
            def __getattr__(self, name):
                return getattr(original, name)

            def apply_many(self, conn, batch, me):
                if any(e.id == entries[1].id for e in batch):
                    raise RuntimeError("cannot fold this one")
                original.apply_many(conn, batch, me)

        ledger.fold = Failing()
        assert ledger.transaction(lambda c: ledger.project(c)) == 40
        assert backlog.lag(ledger.conn).entries == 0
    finally:
        ledger.close()
    ids = {i for (i,) in node_home.query("SELECT id FROM listings WHERE author = ?",
                                         (ident.node_id,))}
    assert ids == {e.id.hex() for e in entries} - {entries[1].id.hex()}


async def test_a_local_post_is_read_your_writes_behind_a_backlog(make_home, make_node):
    home = make_home()
    ident, entries = _log(3, 200)
    ledger = home.ledger()
    try:
        ledger.deferred = True  # stored as the running node stores: folding left behind
        ledger.transaction(lambda c: ledger.ingest(c, ident.public, entries))
    finally:
        ledger.close()
    assert home.query("SELECT count(*) FROM listings WHERE author = ?",
                      (ident.node_id,)) == [(0,)]
    node = await make_node(home=home)
    post = await node.create("need", NEED)  # read back in the response ...
    assert post["title"] == NEED["title"]
    got = await node.json("GET", f"/api/v1/needs/{post['id']}")  # ... and on the next read
    assert got["id"] == post["id"]
    await node.app[NODE].store.caught_up()
    await wait_until(lambda: home.query("SELECT count(*) FROM listings WHERE author = ?",
                                        (ident.node_id,)) == [(200,)], what="backlog folded")
    health = await node.json("GET", "/healthz", role=None)
    assert health["projector"]["lag_entries"] == 0
    created = _created_events(home)
    assert created[post["id"]] == 1 and set(created.values()) == {1}
    assert len(created) == 201


async def test_lag_shows_in_status_healthz_and_metrics(make_home, make_node, capsys):
    home = make_home()
    ident, entries = _log(4, 40)
    ledger = home.ledger()
    try:
        ledger.deferred = True
        ledger.transaction(lambda c: ledger.ingest(c, ident.public, entries))
    finally:
        ledger.close()
    assert main(["--home", str(home.path), "status"]) in (0, None)
    out = capsys.readouterr().out
    assert "folding:  40 entries not yet searchable (oldest waiting" in out, out
    node = await make_node(home=home)
    await wait_until(lambda: home.query("SELECT count(*) FROM listings WHERE author = ?",
                                        (ident.node_id,)) == [(40,)], what="backlog folded")
    health = await node.json("GET", "/healthz", role=None)
    assert health["projector"] == {"lag_entries": 0, "lag_seconds": 0}
    r = await node.get("/metrics", role=None)
    text = await r.text()
    assert "aidmesh_projector_lag_entries 0.0" in text
    assert "aidmesh_projector_lag_seconds 0.0" in text
    assert main(["--home", str(home.path), "status"]) in (0, None)
    assert "folding:  0 entries not yet searchable\n" in capsys.readouterr().out
