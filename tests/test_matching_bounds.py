"""Bounded matching (issue 14, finding 6): the best K per listing, one event per listing.

Real nodes and real SQLite files; other groups' listings arrive as signed logs through
the running store, as gossip puts them. The reference is brute force over every pair
with the module's own rule (`fit.fits`) and ranking (`matching.rank`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import h3
from conftest import make_log

from node.runtime import NODE
from node.services.ledger import open_ledger
from node.state import fit, matching, projection
from node.state.rows import columns
from protocol import Identity

K = matching.MAX_MATCHES
HERE = h3.latlng_to_cell(52.52, 13.405, 8)
FAR = h3.latlng_to_cell(52.55, 13.405, 8)  # 3.7 km north of HERE
RING = sorted(h3.grid_disk(HERE, 2))  # HERE and 18 cells within 1.8 km


def need(i: int, **fields: Any) -> dict[str, Any]:
    return {"title": f"Need {i}", "category": "food/bread", "action": "transfer",
            "area": HERE, "urgency": "normal", "radius_km": 10, **fields}


def offer(i: int, **fields: Any) -> dict[str, Any]:
    return {"title": f"Offer {i}", "category": "food/bread", "action": "transfer",
            "area": HERE, "quantity": {"value": "5", "unit": "loaves"}, **fields}


async def ingest(node, identity: Identity, items: list[tuple[str, Any]], previous=None):
    """Store a run of another group's log through the running store (as gossip does)."""
    entries = make_log(identity, items, previous=previous)
    store = node.app[NODE].store
    await store.write(lambda c: store.ledger.ingest(c, identity.public, entries))
    await store.caught_up()  # stored first; the projector folds and matches it after
    return entries


def pairs(rows) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in rows}


def picks(stored: set[tuple[str, str]], listings: dict[str, dict], k: int) -> dict[str, list]:
    """Each listing's best k among its stored pairs, from its own side."""
    out: dict[str, list] = {i: [] for i in listings}
    for n, o in stored:
        out[n].append(o)
        out[o].append(n)
    for me, others in out.items():
        kind = "offer" if listings[me]["kind"] == "need" else "need"
        others.sort(key=lambda c: ranked(listings, me, c, kind))
        del others[k:]
    return out


def ranked(listings: dict[str, dict], me: str, c: str, kind: str) -> tuple:
    need, offer_ = (listings[me], listings[c]) if kind == "offer" else (listings[c], listings[me])
    _, distance = fit.fits(need, offer_)
    return matching.rank(me, kind, c, distance, listings[c]["urgency"], listings[c]["updated"])


def own_best(listings: dict[str, dict], me: str, k: int) -> list[str]:
    """Brute force: a listing's best k among all the listings that fit it."""
    row = listings[me]
    kind = "offer" if row["kind"] == "need" else "need"
    fitting = [c for c, other in listings.items() if other["kind"] == kind and
               fit.fits(*((row, other) if kind == "offer" else (other, row)))[0]]
    return sorted(fitting, key=lambda c: ranked(listings, me, c, kind))[:k]


def best(listings: dict[str, dict], k: int) -> set[tuple[str, str]]:
    """Brute force: the union of every listing's best k."""
    return {(me, c) if row["kind"] == "need" else (c, me)
            for me, row in listings.items() for c in own_best(listings, me, k)}


def listing_rows(home) -> dict[str, dict]:
    conn = home.db()
    try:
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM listings")}
    finally:
        conn.close()


def match_events(home) -> list[dict]:
    return [json.loads(r[0]) for r in home.query(
        "SELECT data FROM events WHERE type = 'match' ORDER BY id")]


# -- through a running node --------------------------------------------------------------------


async def test_200_needs_and_200_offers_keep_k_each_with_one_event_per_listing(node):
    needs, offers = Identity.generate(), Identity.generate()
    urgency = ["critical" if i % 20 == 0 else "high" if i % 2 else "low" for i in range(200)]
    await ingest(node, needs, [("need", need(i, urgency=urgency[i])) for i in range(200)])
    run = await ingest(node, offers, [("offer", offer(i)) for i in range(100)])
    await ingest(node, offers, [("offer", offer(i)) for i in range(100, 200)], previous=run[-1])

    listings = listing_rows(node.home)
    stored = pairs(node.home.query("SELECT need, offer FROM matches"))
    # 40,000 pairs fit; every stored one is a pick (best K) of one of its two sides ...
    assert K * 200 <= len(stored) <= K * len(listings)
    chosen = picks(stored, listings, K)
    assert all(o in chosen[n] or n in chosen[o] for n, o in stored)
    # ... and every offer (they came after all the needs) holds its exact best K.
    for o in (i for i, r in listings.items() if r["kind"] == "offer"):
        assert chosen[o] == own_best(listings, o, K)

    # One event per offer (the needs had nothing to match when they came), not per pair.
    events = match_events(node.home)
    assert len(events) == 200
    critical = {i for i, r in listings.items() if r["urgency"] == "critical"}
    for data in events:
        assert data["kind"] == "offer" and listings[data["listing"]]["kind"] == "offer"
        assert data["count"] >= K and len(data["matches"]) == matching.EVENT_PAIRS
        assert all(m["offer"] == data["listing"] and m["distance_km"] == 0.0
                   for m in data["matches"])
        # best first: the 10 critical needs lead every offer's list
        assert {m["need"] for m in data["matches"][:10]} == critical
    assert sum(d["count"] for d in events) >= len(stored)

    # The API still answers best first: an offer's matches start with the critical needs.
    some = next(iter(o for o in listings if listings[o]["kind"] == "offer"))
    body = await node.json("GET", f"/api/v1/matches?offer={some}&limit=10", role="reader")
    assert {m["need"]["id"] for m in body["items"]} == critical
    body = await node.json("GET", f"/api/v1/matches?offer={some}&limit=200", role="reader")
    ranks = [matching.URGENCY[m["need"]["urgency"]] for m in body["items"]]
    assert len(ranks) >= K and ranks == sorted(ranks, reverse=True)


async def test_a_nearer_offer_displaces_the_worst_match_of_a_need(node):
    group, far_offers, decoys = Identity.generate(), Identity.generate(), Identity.generate()
    [x] = await ingest(node, group, [("need", need(0))])
    run = await ingest(node, far_offers, [("offer", offer(i, area=FAR)) for i in range(K)])
    # K needs right where the offers are: each far offer picks them, not the need x
    await ingest(node, decoys, [("need", need(i, area=FAR)) for i in range(K)])
    x = x.id.hex()
    before = [m["offer"]["id"] for m in (await node.json(
        "GET", f"/api/v1/matches?need={x}&limit=100", role="reader"))["items"]]
    assert sorted(before) == sorted(e.id.hex() for e in run)
    listings = listing_rows(node.home)
    worst = max(before, key=lambda o: ranked(listings, x, o, "offer"))

    [near] = await ingest(node, far_offers, [("offer", offer(K, area=HERE))], previous=run[-1])
    after = (await node.json("GET", f"/api/v1/matches?need={x}&limit=100",
                             role="reader"))["items"]
    assert after[0]["offer"]["id"] == near.id.hex() and after[0]["distance_km"] == 0
    assert {m["offer"]["id"] for m in after} == set(before) - {worst} | {near.id.hex()}
    assert node.home.query("SELECT count(*) FROM matches WHERE need = ? AND offer = ?",
                           (x, worst)) == [(0,)]
    # the newcomer's one event lists its pairs, the need it is nearest to first
    data = match_events(node.home)[-1]
    assert data["listing"] == near.id.hex() and data["matches"][0]["need"] == x
    assert data["count"] == K  # x and the K - 1 best decoys: its picks


def test_reindex_gives_the_same_matches(node_home):
    needs, offers = Identity.generate(), Identity.generate()
    node_home.ingest(make_log(needs, [("need", need(i, area=RING[i % len(RING)]))
                                      for i in range(60)]))
    node_home.ingest(make_log(offers, [("offer", offer(i, area=RING[i * 7 % len(RING)]))
                                       for i in range(60)]))
    query = "SELECT need, offer, distance_km FROM matches ORDER BY need, offer"
    before = node_home.query(query)
    assert K * 60 <= len(before) < 60 * 60
    ledger = node_home.ledger()
    try:
        ledger.rebuild()
    finally:
        ledger.close()
    assert node_home.query(query) == before


# -- the state layer on its own (k below the default, any arrival order) ------------------------


def _row(rng: random.Random, kind: str, author: str, i: int) -> dict[str, Any]:
    fields = (need if kind == "need" else offer)(
        i, area=rng.choice(RING), **({"urgency": rng.choice(list(matching.URGENCY))}
                                     if kind == "need" else {}))
    return {"id": rng.randbytes(32).hex(), "author": author, "kind": kind, "seq": i + 1,
            "local": 0, "ts": 1_800_000_000_000 + rng.randrange(3) * 86_400_000,
            **columns(fields)}


def _fold(path: Path, rows: list[dict], k: int, batch: bool = False) -> set[tuple[str, str]]:
    """Insert listings in this order and match each as the projection does."""
    ledger = open_ledger(path, Identity.generate())
    conn = ledger.conn
    try:
        def run(c) -> None:
            if batch:
                c.executemany(projection._INSERT_LISTING, rows)
            for row in rows:
                if not batch:
                    c.execute(projection._INSERT_LISTING, row)
                matching.rematch(c, row["id"], 1_800_000_000_000, fresh=True, k=k)
        ledger.transaction(run)
        return pairs(conn.execute("SELECT need, offer FROM matches"))
    finally:
        ledger.close()


def test_within_reach_the_result_is_every_best_k_whatever_the_arrival_order(tmp_path):
    rng = random.Random(14)
    rows = [_row(rng, kind, f"am{kind}", i) for kind in ("need", "offer") for i in range(6)]
    listings = {r["id"]: {**r, "updated": r["ts"], "withdrawn": 0} for r in rows}
    k = 3  # six counterparts each: within REACH * k, so the union of best k is exact
    expect = best(listings, k)
    assert len(expect) < 36  # the bound is doing something
    for attempt in range(6):
        order = rows[:]
        rng.shuffle(order)
        assert _fold(tmp_path / f"{attempt}.db", order, k) == expect, attempt
    assert _fold(tmp_path / "batch.db", order, k, batch=True) == expect
    unbounded = {(n, o) for n, nr in listings.items() for o, orow in listings.items()
                 if nr["kind"] == "need" and orow["kind"] == "offer"
                 and fit.fits(nr, orow)[0]}
    assert _fold(tmp_path / "all.db", order, 0) == unbounded


def test_a_withdrawn_pick_is_replaced_by_the_next_best(tmp_path):
    rng = random.Random(6)
    around = sorted((fit.fits(columns(need(0)) | {"author": "a"},
                                   columns(offer(0, area=c)) | {"author": "b"})[1], c)
                    for c in RING if c != HERE)
    cells = [around[i][1] for i in (0, 6, 12)]  # three distances from x, nearest first
    assert around[0][0] < around[6][0] < around[12][0]
    x = _row(rng, "need", "amgroup", 0) | columns(need(0))
    # each offer has a need of its own in its cell: with k = 1 that one is its pick
    decoys = [_row(rng, "need", "amdecoy", i) | columns(need(i, area=c))
              for i, c in enumerate(cells)]
    offers = [_row(rng, "offer", "amother", i) | columns(offer(i, area=c))
              for i, c in enumerate(cells)]
    ledger = open_ledger(tmp_path / "node.db", Identity.generate())
    conn = ledger.conn
    mine = "SELECT offer, distance_km FROM matches WHERE need = ?"
    try:
        def fold(c) -> None:
            for row in [x, *decoys, *offers]:
                c.execute(projection._INSERT_LISTING, row)
                matching.rematch(c, row["id"], 1_800_000_000_000, fresh=True, k=1)
        ledger.transaction(fold)
        assert [r[0] for r in conn.execute(mine, (x["id"],))] == [offers[0]["id"]]
        last = conn.execute("SELECT max(id) FROM events").fetchone()[0]

        def withdraw(c) -> None:
            c.execute("UPDATE listings SET withdrawn = 1 WHERE id = ?", (offers[0]["id"],))
            matching.rematch(c, offers[0]["id"], 0, k=1)
        ledger.transaction(withdraw)
        [(refill, km)] = conn.execute(mine, (x["id"],)).fetchall()
        assert refill == offers[1]["id"] and km == around[6][0]
        events = [json.loads(r[0]) for r in conn.execute(
            "SELECT data FROM events WHERE id > ? AND type = 'match'", (last,))]
        assert {"listing": x["id"], "kind": "need", "count": 1, "matches": [
            {"need": x["id"], "offer": refill, "distance_km": km}]} in events
        assert {e["listing"] for e in events} == {x["id"], decoys[0]["id"]}
    finally:
        ledger.close()
