"""A frozen (forked) log is advertised exactly as far as it is served (spec §8.3, §14.1).

A log forked at seq s is served by /pull and /payloads only below s, so /state lists it
at s - 1 (or not at all when s = 1), with the fork proof beside it: a peer is never told
of entries it cannot get.
"""

from __future__ import annotations

from conftest import make_log
from federation_helpers import Cluster, signed, wait_until

from node.services import replication
from node.services.ledger import open_ledger
from protocol import Identity, decode_fork_proof, decode_header
from protocol.sync import Head, decode_frames, decode_state, encode_want

LISTING = {"title": "Bread", "category": "food", "action": "transfer"}


async def test_state_advertises_a_frozen_log_below_the_fork(cluster: Cluster) -> None:
    a, b = await cluster.start(2, prefix="z")
    await cluster.peer(a, b)
    for title in ("one", "two", "three"):
        await a.create(title=title)
    await wait_until(lambda: a.head_seq(b.public) == b.head_seq(b.public) > 0,
                     what="a holds b's log")
    top = a.head_seq(a.public)
    fork_seq = top - 1  # a copy of the key signed another entry there; ours goes on past it
    await a.stop()
    ledger = open_ledger(a.config.db_path, a.identity)
    try:
        below = ledger.conn.execute("SELECT raw FROM entries WHERE author = ? AND seq = ?",
                                    (a.public, fork_seq - 1)).fetchone()[0]
        twin = make_log(a.identity, [("offer", {**LISTING, "title": "twin"})],
                        previous=decode_header(below))
        assert ledger.transaction(lambda c: ledger.ingest(c, a.public, twin)).fork
    finally:
        ledger.close()
    await a.start()

    status, body, _ = await signed(b.session, b.identity, "GET", a.url + "/federation/v1/state")
    assert status == 200
    heads, forks = decode_state(body)
    below_id = decode_header(below).id
    assert heads[a.public] == Head(fork_seq - 1, below_id)  # not `top`, never served
    assert [(p.author, p.seq) for p in map(decode_fork_proof, forks)] == [(a.public, fork_seq)]
    assert heads[b.public].seq == b.head_seq(b.public)  # other logs as they are

    # ... and /pull serves exactly what /state advertised.
    status, page, _ = await signed(b.session, b.identity, "POST", a.url + "/federation/v1/pull",
                                   encode_want({a.public: 0}))
    assert status == 200
    assert [decode_header(raw).seq for raw, _ in decode_frames(page)] == \
        list(range(1, fork_seq))


def test_a_log_forked_at_seq_1_is_not_advertised(tmp_path) -> None:
    me, other = Identity.generate(), Identity.generate()
    ledger = open_ledger(tmp_path / "store.db", me)
    try:
        ledger.transaction(lambda c: ledger.append_local(
            c, "trust", {"peer": other.public, "url": "http://127.0.0.1:9"}))
        log = make_log(other, [("offer", LISTING)] * 3)
        twin = make_log(other, [("offer", {**LISTING, "title": "twin"})])
        ledger.transaction(lambda c: ledger.ingest(c, other.public, log))
        assert ledger.transaction(lambda c: ledger.ingest(c, other.public, twin)).fork

        heads, forks = decode_state(replication.served_state(ledger.conn, me.public, 2))
        assert other.public not in heads and me.public in heads
        assert [decode_fork_proof(p).seq for p in forks] == [1]
        cursor = replication.plan_pull(ledger.conn, me.public, 2, {other.public: 0})
        assert replication.next_page(ledger.conn, cursor) == (b"", 0)
    finally:
        ledger.close()
