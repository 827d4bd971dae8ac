"""Federation between several real nodes: real SQLite files, real servers on 127.0.0.1.

Every test waits on conditions (polling with a deadline), never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from federation_helpers import (
    Cluster,
    FedNode,
    converged,
    signed,
    wait_until,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from node.federation.httpsig import sign_request
from protocol import parse_node_id, verify_run


async def fetch_log(node: FedNode, author: str) -> list[tuple[bytes, bytes | None]]:
    """A whole log as (signed header, payload) pairs, through the client API."""
    out: list[tuple[bytes, bytes | None]] = []
    after = 0
    while True:
        body = await node.call("GET", f"/api/v1/logs/{author}/entries?after={after}&limit=500")
        for e in body["entries"]:
            out.append((bytes.fromhex(e["header"]),
                        None if e["payload"] is None else bytes.fromhex(e["payload"])))
        if body["next_after"] is None:
            return out
        after = body["next_after"]


async def test_line_offer_reaches_the_far_end_and_verifies(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3)
    await cluster.line(a, b, c)
    started = time.monotonic()
    offer = await a.create(title="Ladder to lend", action="lend", category="tools")
    at_c = await wait_until(lambda: c.listing(offer["id"]), what="A's offer at C")
    elapsed = time.monotonic() - started
    print(f"\nA->B->C propagation: {elapsed * 1000:.0f} ms")
    assert at_c["origin"] == a.id
    assert at_c["title"] == "Ladder to lend"
    assert at_c["status"] == "open"

    # C's copy of A's log is byte-identical to A's and verifies on its own.
    copy = await fetch_log(c, a.id)
    assert copy == await fetch_log(a, a.id)
    run = verify_run(copy)
    assert run[-1].author_id == a.id
    assert offer["id"] in {e.id.hex() for e in run}
    assert (await c.logs())[a.id] == (await a.logs())[a.id]


async def test_star_leaves_see_each_other_through_the_hub(cluster: Cluster) -> None:
    hub, *leaves = await cluster.start(4)
    for leaf in leaves:
        await cluster.peer(hub, leaf)
    offers = {leaf.id: (await leaf.create(title=f"from {leaf.name}"))["id"] for leaf in leaves}
    for node in [hub, *leaves]:
        for origin, oid in offers.items():
            got = await wait_until(lambda n=node, i=oid: n.listing(i),
                                   what=f"{oid[:8]} at {node.name}")
            assert got["origin"] == origin
    await wait_until(lambda: converged([hub, *leaves]), what="star converged")


async def test_ring_of_four_converges(cluster: Cluster) -> None:
    nodes = await cluster.start(4)
    for i, n in enumerate(nodes):
        await cluster.peer(n, nodes[(i + 1) % 4])
    offers = [(await n.create(title=f"ring {n.name}"))["id"] for n in nodes]
    await wait_until(lambda: converged(nodes), what="ring converged")
    for n in nodes:
        assert len(await n.logs()) == 4
        for oid in offers:
            assert await n.has_offer(oid)


async def test_hops_limit_replication_scope(cluster: Cluster) -> None:
    """Line A-B-C-D, hops=2: scope is BFS over trust edges from the node itself, so D
    (D->C->B) holds B, C and D but never A, which is three hops away; A likewise never
    holds D. B and C are within two hops of everyone and hold all four logs."""
    a, b, c, d = await cluster.start(4, hops=2)
    await cluster.line(a, b, c, d)
    from_a = await a.create(title="from A")
    from_d = await d.create(title="from D")
    await wait_until(lambda: c.has_offer(from_a["id"]), what="A's offer at C (2 hops)")
    await wait_until(lambda: b.has_offer(from_d["id"]), what="D's offer at B (2 hops)")
    # Sentinels written after C and B hold the far logs: once they reach the ends, the
    # ends have had a round with a neighbour that already offered the far log.
    s_b = await b.create(title="sentinel B")
    s_c = await c.create(title="sentinel C")
    await wait_until(lambda: d.has_offer(s_b["id"]), what="B's sentinel at D")
    await wait_until(lambda: a.has_offer(s_c["id"]), what="C's sentinel at A")
    await wait_until(lambda: converged([b, c]), what="B and C converged")

    assert set(await a.logs()) == {a.id, b.id, c.id}
    assert set(await b.logs()) == {a.id, b.id, c.id, d.id}
    assert set(await c.logs()) == {a.id, b.id, c.id, d.id}
    assert set(await d.logs()) == {b.id, c.id, d.id}
    assert not await d.has_offer(from_a["id"])
    assert not await a.has_offer(from_d["id"])
    # D is not "behind": A's log is simply outside its scope.
    await wait_until(lambda: _all_in_sync(d), what="D in sync")


async def _all_in_sync(node: FedNode) -> bool:
    peers = await node.peers()
    return bool(peers) and all(p["entries_behind"] == 0 and p["last_success"]
                               for p in peers.values())


async def test_hops_one_stops_at_direct_peers(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3, hops=1)
    await cluster.line(a, b, c)
    from_a = await a.create(title="from A")
    await wait_until(lambda: b.has_offer(from_a["id"]), what="A's offer at B")
    sentinel = await b.create(title="sentinel")
    await wait_until(lambda: c.has_offer(sentinel["id"]), what="B's sentinel at C")
    assert set(await c.logs()) == {b.id, c.id}
    assert not await c.has_offer(from_a["id"])


async def test_restarted_node_catches_up_on_a_new_port(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3)
    await cluster.line(a, b, c)
    first = await a.create(title="before the outage")
    await wait_until(lambda: c.has_offer(first["id"]), what="first offer at C")
    await b.stop()
    missed = [(await a.create(title=f"during outage {i}"))["id"] for i in range(3)]
    # B comes back with the same data dir on another port and catches up with A.
    old_url = b.url
    await b.start()
    assert b.url != old_url
    a_seq = (await a.logs())[a.id][0]
    await cluster.repeer(b)  # A and C append a trust entry with B's new URL
    assert (await a.logs())[a.id][0] == a_seq + 1
    assert (await a.peers())[b.id]["url"] == b.url
    for oid in missed:
        await wait_until(lambda i=oid: c.has_offer(i), what="missed offer at C")
    # ... and the way back works through the new URL.
    back = await b.create(title="B is back")
    await wait_until(lambda: a.has_offer(back["id"]), what="B's offer at A")
    await wait_until(lambda: converged([a, b, c]), what="converged after restart")


async def test_update_and_withdraw_propagate(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3)
    await cluster.line(a, b, c)
    offer = await a.create(title="Rides to the clinic", action="deliverService",
                           category="transport")
    await wait_until(lambda: c.has_offer(offer["id"]), what="offer at C")
    await a.call("PATCH", f"/api/v1/offers/{offer['id']}", {"title": "Rides on Tuesdays"})

    async def title_at_c() -> bool:
        got = await c.listing(offer["id"])
        return got is not None and got["title"] == "Rides on Tuesdays"

    await wait_until(title_at_c, what="update at C")
    await a.call("DELETE", f"/api/v1/offers/{offer['id']}")

    async def withdrawn_at_c() -> bool:
        got = await c.listing(offer["id"])
        return got is not None and got["status"] == "withdrawn"

    await wait_until(withdrawn_at_c, what="withdraw at C")
    # Only the origin can change it: C cannot withdraw A's offer.
    status, body = await c.call("DELETE", f"/api/v1/offers/{offer['id']}", expect=None)
    assert status == 403 and body["type"].endswith("not-origin")


async def test_peer_removal_stops_the_exchange(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    before = await a.create(title="while peered")
    await wait_until(lambda: b.has_offer(before["id"]), what="offer at B")

    await b.remove_peer(a)
    assert a.id not in await b.peers()
    assert a.public not in b.node.gossip.links
    # A still trusts B; its requests are now refused before any signature work.
    url = b.url + "/federation/v1/state"
    status, body, _ = await signed(a.session, a.identity, "GET", url)
    assert status == 403 and body["type"].endswith("untrusted-caller")

    t_post = time.time() * 1000
    after = await a.create(title="after removal")

    async def refused_since_post() -> bool:
        p = (await a.peers())[b.id]
        return bool(p["last_error"]) and "403" in p["last_error"] and \
            _ms(p["last_error_at"]) >= t_post

    await wait_until(refused_since_post, what="A's round refused by B after the post")
    assert not await b.has_offer(after["id"])
    assert (await b.logs())[a.id][0] < (await a.logs())[a.id][0]


def _ms(rfc3339: str | None) -> float:
    import datetime

    if rfc3339 is None:
        return 0
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000


async def test_peer_progress_is_reported(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    offer = await a.create()
    await wait_until(lambda: b.has_offer(offer["id"]), what="offer at B")

    async def settled() -> dict | None:
        p = (await b.peers())[a.id]
        return p if p["last_success"] and p["entries_behind"] == 0 else None

    p = await wait_until(settled, what="B's progress with A")
    assert p["url"] == a.url
    assert p["last_success"].endswith("Z")
    assert p["entries_in"] >= 2  # A's profile, trust and offer
    assert p["bytes_in"] > 0 and p["bytes_out"] > 0
    q = (await a.peers())[b.id]
    assert q["bytes_in"] > 0 and q["bytes_out"] > 0


async def test_in_sync_round_is_one_small_304(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    for i in range(3):
        await a.create(title=f"offer {i}")
    await wait_until(lambda: converged([a, b]), what="converged")
    link = b.node.gossip.links[a.public]
    port = int(a.url.rsplit(":", 1)[1])
    url = a.url + "/federation/v1/state"

    async def in_sync_round() -> tuple[bytes, bytes] | None:
        """The request B's gossip client sends with the last ETag it holds for A, on a raw
        socket so every byte both ways is counted; None unless A answers 304."""
        if link.digest is None:
            return None
        headers = {"Host": f"127.0.0.1:{port}", "Accept": "*/*",
                   "Accept-Encoding": "gzip, deflate",
                   "User-Agent": f"Python/3 aiohttp/{aiohttp.__version__}",
                   **sign_request(b.identity, "GET", url, None,
                                  {"If-None-Match": link.digest}),
                   "Connection": "close"}
        request = ("GET /federation/v1/state HTTP/1.1\r\n"
                   + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        response = await reader.read()
        writer.close()
        await writer.wait_closed()
        return (request, response) if response.startswith(b"HTTP/1.1 304") else None

    request, response = await wait_until(in_sync_round, what="B's ETag for A answered 304")
    total = len(request) + len(response)
    print(f"\nin-sync round: request {len(request)} B + response {len(response)} B "
          f"= {total} B")
    assert b"\r\n\r\n" == response[-4:]  # no body
    assert total < 1024

    # After a new entry the same ETag gets the full state again.
    etag = link.digest
    await a.create(title="one more")
    status, body, _ = await signed(b.session, b.identity, "GET", url,
                                   headers={"If-None-Match": etag})
    assert status == 200 and len(body) > 0


async def test_notify_prompts_a_pull(cluster: Cluster) -> None:
    """With an hour between rounds, only the notify can bring the entry over promptly."""
    a, b = await cluster.start(2, interval=3600)
    await cluster.peer(a, b)
    link = b.node.gossip.links[a.public]
    await wait_until(lambda: link.last_success and not link.failures and not link.syncing,
                     what="B's first round with A")
    await wait_until(lambda: converged([a, b]), what="converged")
    started = time.monotonic()
    offer = await a.create(title="pushed")
    await wait_until(lambda: b.has_offer(offer["id"]), timeout=10, what="notified pull")
    print(f"\nnotify -> pull: {(time.monotonic() - started) * 1000:.0f} ms")


# -- convergence property --------------------------------------------------------------

OPS = hst.lists(
    hst.one_of(
        hst.tuples(hst.just("post"), hst.integers(0, 3)),
        hst.tuples(hst.just("cut"), hst.integers(0, 3), hst.integers(0, 3)),
        hst.tuples(hst.just("heal"), hst.integers(0, 3), hst.integers(0, 3)),
        hst.tuples(hst.just("restart"), hst.integers(0, 3)),
        hst.tuples(hst.just("pause"), hst.integers(0, 3)),
    ),
    min_size=3, max_size=12,
)


async def _convergence_scenario(root: Path, size: int, ops: list[tuple]) -> None:
    cluster = Cluster(root)
    try:
        nodes = await cluster.start(size)
        linked = {(i, j) for i in range(size) for j in range(i + 1, size)}
        for i, j in sorted(linked):
            await cluster.peer(nodes[i], nodes[j])
        posted = 0
        for op in ops:
            kind = op[0]
            if kind == "post":
                await nodes[op[1] % size].create(title=f"post {posted}")
                posted += 1
            elif kind in ("cut", "heal"):
                i, j = sorted((op[1] % size, op[2] % size))
                if i == j:
                    continue
                if kind == "cut" and (i, j) in linked:
                    await cluster.unpeer(nodes[i], nodes[j])
                    linked.discard((i, j))
                elif kind == "heal" and (i, j) not in linked:
                    await cluster.peer(nodes[i], nodes[j])
                    linked.add((i, j))
            elif kind == "restart":
                n = nodes[op[1] % size]
                await n.stop()
                await n.start()
                await cluster.repeer(n)
            elif kind == "pause":  # let gossip interleave with the next operations
                await asyncio.sleep(op[1] * 0.05)
        for pair in [(x, y) for x in range(size) for y in range(x + 1, size)]:
            if pair not in linked:
                await cluster.peer(nodes[pair[0]], nodes[pair[1]])
        await wait_until(lambda: converged(nodes), timeout=30, what="all heads equal")
        views = [await n.logs() for n in nodes]
        assert len(views[0]) == size
        offers = [await n.call("GET", "/api/v1/offers?limit=200") for n in nodes]
        ids = [sorted(o["id"] for o in body["items"]) for body in offers]
        assert all(x == ids[0] for x in ids) and len(ids[0]) == posted
        for n in nodes:  # every replica verifies from seq 1
            for author in views[0]:
                verify_run(await fetch_log(n, author))
                assert parse_node_id(author)
    finally:
        await cluster.close()


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(size=hst.integers(3, 4), ops=OPS)
def test_convergence_property(size: int, ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory(prefix="aidmesh-conv-") as root:
        asyncio.run(_convergence_scenario(Path(root), size, ops))
