"""The store on real SQLite files: group commit, isolation of failed writes, ingest, forks."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from conftest import OFFER, expect_problem, make_log

from node.services.ledger import open_ledger
from node.store import db
from node.store.ledger import StoreError, heads, verify_log
from node.store.writer import Store
from protocol import Identity, decode, decode_header

LISTING = {"title": "Bread", "category": "food", "action": "transfer"}


@pytest.fixture
def ledger(tmp_path):
    led = open_ledger(tmp_path / "store.db", Identity.generate())
    yield led
    led.close()


@pytest.fixture
async def store(tmp_path):
    s = Store(open_ledger(tmp_path / "store.db", Identity.generate()))
    await s.start()
    yield s
    await s.close()


def other_conn(path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def count(path, sql="SELECT count(*) FROM entries") -> int:
    conn = other_conn(path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


# -- schema --------------------------------------------------------------------------------


def test_migrations_are_versioned_and_idempotent(ledger):
    version = ledger.conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(db.MIGRATIONS)
    assert db.migrate(ledger.conn) == version
    again = open_ledger(ledger.path, ledger.identity)
    again.close()
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in ledger.conn.execute("SELECT name FROM sqlite_master")}
    assert {"entries", "heads", "tokens", "listings", "listings_fts", "forks"} <= tables


# -- the synchronous ledger -------------------------------------------------------------------


def test_append_local_chains_and_verifies(ledger):
    for i in range(5):
        ledger.transaction(lambda c, i=i: ledger.append_local(c, "offer", {**LISTING,
                                                                           "title": f"B{i}"}))
    me = ledger.identity.public
    assert heads(ledger.conn)[me].seq == 5
    assert verify_log(ledger.conn, me) == (5, None)
    assert count(ledger.path, "SELECT count(*) FROM listings") == 5


def test_failed_transaction_leaves_nothing(ledger):
    def half_then_fail(c):
        ledger.append_local(c, "offer", LISTING)
        ledger.append_local(c, "offer", {**LISTING, "category": "Not Valid"})

    with pytest.raises(Exception) as info:
        ledger.transaction(half_then_fail)
    assert "category" in str(info.value)
    assert count(ledger.path) == 0
    assert count(ledger.path, "SELECT count(*) FROM listings") == 0
    assert heads(ledger.conn) == {}


def test_ingest_in_batches_with_duplicates(ledger):
    other = Identity.generate()
    entries = make_log(other, [("offer", {**LISTING, "title": f"T{i}"}) for i in range(6)])
    r1 = ledger.transaction(lambda c: ledger.ingest(c, other.public, entries[:4]))
    assert (r1.stored, r1.duplicates, r1.fork) == (4, 0, None)
    r2 = ledger.transaction(lambda c: ledger.ingest(c, other.public, entries[2:]))
    assert (r2.stored, r2.duplicates, r2.fork) == (2, 2, None)
    assert heads(ledger.conn)[other.public].seq == 6
    assert verify_log(ledger.conn, other.public) == (6, None)
    rows = ledger.conn.execute("SELECT local, author FROM listings").fetchall()
    assert len(rows) == 6 and {(r["local"], r["author"]) for r in rows} == {(0, other.node_id)}


def test_ingest_gap_is_refused_and_writes_nothing(ledger):
    other = Identity.generate()
    entries = make_log(other, [("offer", LISTING)] * 4)
    ledger.transaction(lambda c: ledger.ingest(c, other.public, entries[:1]))
    with pytest.raises(StoreError) as info:
        ledger.transaction(lambda c: ledger.ingest(c, other.public, entries[2:]))
    assert info.value.code == "not-contiguous"
    assert count(ledger.path) == 1


def test_fork_is_recorded_and_freezes_the_log(ledger):
    other = Identity.generate()
    a = make_log(other, [("offer", LISTING), ("offer", {**LISTING, "title": "A"})])
    b = make_log(other, [("offer", {**LISTING, "title": "B"})], previous=a[0])
    ledger.transaction(lambda c: ledger.ingest(c, other.public, a))
    result = ledger.transaction(lambda c: ledger.ingest(c, other.public, b))
    assert result.stored == 0 and result.fork is not None
    fork = ledger.conn.execute("SELECT author, seq FROM forks").fetchone()
    assert (fork["author"], fork["seq"]) == (other.public, 2)
    more = make_log(other, [("offer", LISTING)], previous=a[1])
    frozen = ledger.transaction(lambda c: ledger.ingest(c, other.public, more))
    assert (frozen.stored, frozen.duplicates) == (0, 0)
    assert heads(ledger.conn)[other.public].seq == 2


def test_redacted_payload_still_verifies(ledger):
    entry = ledger.transaction(lambda c: ledger.append_local(c, "offer", LISTING))
    ledger.transaction(lambda c: ledger.append_local(c, "redact", {"target": entry.id}))
    assert ledger.conn.execute("SELECT payload FROM entries WHERE seq = 1").fetchone()[0] is None
    assert count(ledger.path, "SELECT count(*) FROM listings") == 0
    assert verify_log(ledger.conn, ledger.identity.public) == (2, None)
    assert ledger.rebuild() == 2
    assert count(ledger.path, "SELECT count(*) FROM listings") == 0


# -- the async store ---------------------------------------------------------------------------


async def test_group_commit_of_concurrent_writes(store):
    results = await asyncio.gather(*(
        store.write(lambda c, i=i: store.ledger.append_local(c, "offer", {**LISTING,
                                                                         "title": f"G{i}"}))
        for i in range(100)))
    assert sorted(e.seq for e in results) == list(range(1, 101))
    assert count(store.ledger.path) == 100  # committed: visible to another connection
    conn = other_conn(store.ledger.path)
    try:
        assert verify_log(conn, store.identity.public) == (100, None)
    finally:
        conn.close()


async def test_a_failing_write_does_not_undo_its_batch(store):
    def good(i):
        return lambda c: store.ledger.append_local(c, "offer", {**LISTING, "title": f"ok{i}"})

    def bad(c):
        store.ledger.append_local(c, "offer", {**LISTING, "title": "half"})
        raise RuntimeError("boom after a write")

    jobs = [good(0), bad, good(1), bad, good(2)]
    results = await asyncio.gather(*(store.write(j) for j in jobs), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Entry", "RuntimeError", "Entry",
                                                   "RuntimeError", "Entry"]
    titles = await store.read(lambda c: [decode(r["payload"])["title"] for r in c.execute(
        "SELECT payload FROM entries ORDER BY seq")])
    assert titles == ["ok0", "ok1", "ok2"]
    assert [r.seq for r in results if not isinstance(r, Exception)] == [1, 2, 3]
    assert await store.read(lambda c: verify_log(c, store.identity.public)) == (3, None)


async def test_write_returns_only_after_commit(store):
    seen = []

    async def write_and_look(i):
        entry = await store.write(lambda c: store.ledger.append_local(c, "need", {
            **LISTING, "title": f"N{i}"}))
        # another connection must already see it: acknowledged means durable
        conn = other_conn(store.ledger.path)
        try:
            seen.append(conn.execute("SELECT count(*) FROM entries WHERE id = ?",
                                     (entry.id,)).fetchone()[0])
        finally:
            conn.close()

    await asyncio.gather(*(write_and_look(i) for i in range(20)))
    assert seen == [1] * 20


async def test_reopen_sees_everything(tmp_path):
    identity = Identity.generate()
    path = tmp_path / "re.db"
    s = Store(open_ledger(path, identity))
    await s.start()
    await asyncio.gather(*(s.write(lambda c: s.ledger.append_local(c, "offer", LISTING))
                           for _ in range(10)))
    await s.close()
    s2 = Store(open_ledger(path, identity))
    await s2.start()
    try:
        entry = await s2.write(lambda c: s2.ledger.append_local(c, "offer", LISTING))
        assert entry.seq == 11
    finally:
        await s2.close()


# -- a forked own log through the API -----------------------------------------------------------


async def test_own_forked_log_refuses_writes_with_409(node):
    offer = await node.create("offer")
    # a copy of the key appended elsewhere: another entry at our seq 2
    ledger = node.home.ledger()
    try:
        first = ledger.conn.execute("SELECT raw FROM entries WHERE seq = 1").fetchone()[0]
        twin = make_log(node.home.identity, [("offer", {**LISTING, "title": "Twin"})],
                        previous=decode_header(first))
        result = ledger.transaction(lambda c: ledger.ingest(c, node.home.identity.public,
                                                            twin))
        assert result.fork is not None
    finally:
        ledger.close()
    before = node.home.snapshot()
    await expect_problem(await node.post("/api/v1/offers", json=OFFER), 409, "log-frozen")
    await expect_problem(await node.patch(f"/api/v1/offers/{offer['id']}",
                                          json={"title": "x"}), 409, "log-frozen")
    await expect_problem(await node.delete(f"/api/v1/offers/{offer['id']}"), 409, "log-frozen")
    assert node.home.snapshot() == before
    forks = await node.json("GET", "/api/v1/forks", role="reader")
    assert [(f["author"], f["seq"]) for f in forks["forks"]] == [(node.node_id, 2)]
