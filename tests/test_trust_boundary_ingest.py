"""A peer gives a node only what the node asked for, and can never take anything away.

Issue 14, findings 1-3: real victim nodes, a hostile `MaliciousPeer` the victim trusts,
and an honest node whose sentinel entry must still arrive after each attack.
"""

from __future__ import annotations

import os

from federation_helpers import Cluster, FedNode, MaliciousPeer, make_run, wait_until

from node.app import create_app
from node.config import load_config
from node.federation import fetch
from node.services import sealing
from protocol import (
    SIGNING_PREFIX,
    Entry,
    Identity,
    create_entry,
    decode_header,
    make_fork_proof,
)
from protocol.identity import sha256
from protocol.sync import PULL_MAX_FRAMES, Head, encode_frame

# -- set-up ----------------------------------------------------------------------------


async def victim_with(cluster: Cluster, *, hops: int = 1
                      ) -> tuple[FedNode, FedNode, MaliciousPeer]:
    """A victim peered with an honest node and with a hostile peer it trusts."""
    victim = await cluster.add("victim", hops=hops)
    honest = await cluster.add("honest")
    await cluster.peer(victim, honest)
    mal = await MaliciousPeer().start(cluster)
    await victim.add_peer(mal.id, mal.url)
    return victim, honest, mal


async def sentinel_arrives(victim: FedNode, honest: FedNode) -> None:
    offer = await honest.create(title="sentinel")
    got = await wait_until(lambda: victim.listing(offer["id"]), what="sentinel at victim")
    assert got["origin"] == honest.id


def forged(entry: Entry) -> Entry:
    """The same header signed by another key: any signature check would fail."""
    raw = entry.header_bytes + Identity.generate().sign(SIGNING_PREFIX + entry.header_bytes)
    return Entry(entry.header, raw, sha256(raw), entry.payload)


def link_of(victim: FedNode, mal: MaliciousPeer):
    return victim.node.gossip.links[mal.identity.public]


def log_of(node: FedNode) -> list[Entry]:
    """A node's own log as stored, payloads included (None where erased)."""
    rows = node.query("SELECT raw, payload FROM entries WHERE author = ? ORDER BY seq",
                      (node.public,))
    return [Entry(decode_header(r[0]).header, r[0], sha256(r[0]), r[1]) for r in rows]


def trusting(mal: MaliciousPeer, other: FedNode) -> list[Entry]:
    """The hostile peer's own log: a profile and a trust of ``other`` (2 hops away)."""
    [profile] = make_run(mal.identity, 1)
    return [profile, create_entry(mal.identity, "trust", {"peer": other.public,
                                                          "url": other.url},
                                  previous=profile)]


def missing(node: FedNode) -> set[bytes]:
    return {r[0] for r in node.query("SELECT id FROM payload_missing")}


def authors(node: FedNode) -> set[bytes]:
    return {r[0] for r in node.query("SELECT DISTINCT author FROM entries")}


# -- 1. only what was asked ------------------------------------------------------------


async def test_out_of_scope_authors_in_a_pull_are_dropped_and_counted(cluster: Cluster) -> None:
    """hops=1 and the peer's state names only its own log: frames of 30 other logs in the
    pull (half of them forged) are dropped unverified, counted, and nothing is stored."""
    victim, honest, mal = await victim_with(cluster, hops=1)
    own = make_run(mal.identity, 2)
    spam = []
    for i in range(30):
        [e] = make_run(Identity.generate(), 1, kind="offer", start=i)
        spam.append(forged(e) if i % 2 else e)
    before = victim.snapshot(excluding=(honest.public, mal.identity.public))
    mal.serve_logs(own, extra=b"".join(encode_frame(e.raw, e.payload) for e in spam))
    await wait_until(lambda: victim.head_seq(mal.identity.public) == 2,
                     what="the peer's own log at the victim")
    link = link_of(victim, mal)
    await wait_until(lambda: link.rejected >= 30, what="spam counted against the peer")
    assert "not-asked" in (link.last_error or "") and "bad-signature" not in link.last_error
    await sentinel_arrives(victim, honest)
    assert authors(victim) == {victim.public, honest.public, mal.identity.public}
    assert victim.snapshot(excluding=(honest.public, mal.identity.public)) == before
    offers = (await victim.call("GET", "/api/v1/offers"))["items"]
    assert {o["origin"] for o in offers} <= {honest.id, victim.id}
    peers = await victim.call("GET", "/api/v1/peers")
    [shown] = [p for p in peers["peers"] if p["id"] == mal.id]
    assert shown["rejected"] >= 30
    await wait_until(lambda: victim.query("SELECT rejected FROM peer_state WHERE peer = ?",
                                          (mal.identity.public,)) >= [(30,)],
                     what="the count saved with the peer's progress")


async def test_frames_off_the_asked_position_are_dropped(cluster: Cluster) -> None:
    """An asked author's frames must start right after the seq asked for."""
    victim, honest, mal = await victim_with(cluster)
    run = make_run(mal.identity, 4)
    mal.serve_entries(run[:1])
    await wait_until(lambda: victim.head_seq(mal.identity.public) == 1, what="seq 1")
    before = victim.snapshot(excluding=(honest.public,))
    link = link_of(victim, mal)
    rejected = link.rejected
    # Advertises seq 4, answers seq 3-4 (skipping 2) whatever is asked.
    mal.serve_entries(run[2:], heads={mal.identity.public: Head(4, run[-1].id)})
    await wait_until(lambda: link.rejected >= rejected + 2, what="frames refused")
    assert "seq-gap" in link.last_error, link.last_error
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


async def test_a_pull_answer_past_its_size_is_cut_off(cluster: Cluster) -> None:
    victim, honest, mal = await victim_with(cluster)
    [own] = make_run(mal.identity, 1)
    [stranger] = make_run(Identity.generate(), 1)
    mal.serve_entries([own], page=encode_frame(stranger.raw, None) * (PULL_MAX_FRAMES + 100))
    link = link_of(victim, mal)
    await wait_until(lambda: "more than a response may hold" in (link.last_error or ""),
                     what="the over-long answer refused")
    assert link.rejected <= PULL_MAX_FRAMES + 500  # stopped reading (a page may be in flight)
    await sentinel_arrives(victim, honest)
    assert stranger.author not in authors(victim)


async def test_fork_proofs_in_scope_only_verified_and_capped(cluster: Cluster) -> None:
    """Proofs for authors outside the scope are ignored, bad ones counted, and at most
    FORKS_PER_ROUND are verified and stored per round (in one transaction)."""
    victim, honest, mal = await victim_with(cluster, hops=2)
    far = [Identity.generate() for _ in range(fetch.FORKS_PER_ROUND + 4)]
    trusts = []
    previous = None
    for ident in far:  # the peer's log trusts them: within the victim's 2 hops
        previous = create_entry(mal.identity, "trust", {"peer": ident.public,
                                                        "url": "http://127.0.0.1:9"},
                                previous=previous)
        trusts.append(previous)
    mal.serve_entries(trusts)
    await wait_until(lambda: victim.head_seq(mal.identity.public) == len(trusts),
                     what="the peer's trust entries")

    def proof(ident: Identity) -> bytes:
        a = create_entry(ident, "profile", {"name": "one"})
        b = create_entry(ident, "profile", {"name": "two"})
        return make_fork_proof(a, b).encode()

    outsider = proof(Identity.generate())
    bogus = bytearray(proof(mal.identity))
    bogus[-1] ^= 1  # the second header's signature no longer verifies
    proofs = [proof(i) for i in far]
    link = link_of(victim, mal)
    # One call as a round makes it: capped, the rest left for the next round.
    left = await fetch.forks(victim.node.gossip, link, sorted([*proofs, outsider]))
    assert left is True
    assert victim.query("SELECT count(*) FROM forks") == [(fetch.FORKS_PER_ROUND,)]
    rejected = link.rejected
    mal.forks = sorted({*proofs, outsider, bytes(bogus)})
    await wait_until(lambda: victim.query("SELECT count(*) FROM forks") == [(len(far),)],
                     what="the remaining proofs in later rounds")
    await wait_until(lambda: link.rejected > rejected, what="the bogus proof counted")
    await sentinel_arrives(victim, honest)
    forks = {f["author"] for f in (await victim.call("GET", "/api/v1/forks"))["forks"]}
    assert forks == {i.node_id for i in far}  # not the outsider, not the peer itself


# -- 2. payloads cannot be taken away -------------------------------------------------


async def test_stripped_payloads_are_fetched_again(cluster: Cluster) -> None:
    """A relay strips the payloads of an author's profile and offer: the victim stores
    the headers as missing, refuses the relay's made-up payloads, and takes the real ones
    from the first peer that has them; a node downstream of the victim does the same."""
    victim, honest, mal = await victim_with(cluster, hops=2)
    author = await cluster.add("author")
    offer = await author.create(title="bread for the shelter")
    log = log_of(author)
    own = trusting(mal, author)
    stripped = {e.id for e in log}
    mal.serve_logs([*own, *log], strip=stripped)
    # Made-up payloads for the asked ids: the right size, the wrong bytes.
    mal.payloads_answer = lambda ids: b"".join(
        encode_frame(e.raw, os.urandom(e.header.payload_size)) for e in log if e.id in ids)
    await wait_until(lambda: victim.head_seq(author.public) == len(log), what="headers")
    assert missing(victim) == stripped
    assert await victim.listing(offer["id"]) is None
    link = link_of(victim, mal)
    await wait_until(lambda: link.rejected >= len(log), what="made-up payloads refused")
    assert victim.query("SELECT count(*) FROM entries WHERE author = ? AND payload IS NOT "
                        "NULL", (author.public,)) == [(0,)]
    downstream = await cluster.add("downstream", hops=3)
    await cluster.peer(downstream, victim)
    await wait_until(lambda: downstream.head_seq(author.public) == len(log),
                     what="the headers relayed downstream")
    assert missing(downstream) == stripped  # relayed as nil, and not taken as redacted
    # The victim meets the author: the payloads come back, the listing is served.
    await cluster.peer(victim, author)
    got = await wait_until(lambda: victim.listing(offer["id"]), what="the offer restored")
    assert got["title"] == "bread for the shelter"
    assert missing(victim) == set()
    key = await victim.node.store.read(lambda c: sealing.seal_key(c, author.id))
    assert key == author.identity.seal_public()
    await wait_until(lambda: downstream.listing(offer["id"]), what="the offer downstream")
    assert missing(downstream) == set()
    await sentinel_arrives(victim, honest)


async def test_a_redacted_entry_stays_redacted_and_is_never_fetched(cluster: Cluster) -> None:
    victim, honest, mal = await victim_with(cluster, hops=2)
    author = await cluster.add("author")
    offer = await author.create(title="one ladder")
    await author.call("POST", f"/api/v1/offers/{offer['id']}/redact", expect=204)
    log = log_of(author)
    assert any(e.payload is None for e in log)  # the author's own log redacted it
    own = trusting(mal, author)
    mal.serve_logs([*own, *log])
    await wait_until(lambda: victim.head_seq(author.public) == len(log), what="the log")
    await sentinel_arrives(victim, honest)
    assert missing(victim) == set()
    assert mal.hits["payloads"] == 0
    assert await victim.listing(offer["id"]) is None


# -- 3. bounded reads ------------------------------------------------------------------


async def test_an_endless_state_reply_is_refused_unread(cluster: Cluster) -> None:
    victim, honest, mal = await victim_with(cluster)
    before = victim.snapshot(excluding=(honest.public,))
    chunk = b"\x00" * (1024 * 1024)

    async def endless():
        for _ in range(2048):  # 2 GiB if anyone read it all
            yield chunk

    mal.state_stream = endless
    link = link_of(victim, mal)
    await wait_until(lambda: "more than" in (link.last_error or ""),
                     what="the state refused", timeout=30)
    assert link.bytes_in < 12 * 1024 * 1024, link.bytes_in
    assert mal.state_sent < 512 * 1024 * 1024
    # A declared length over the limit is refused before a byte is read.
    mal.state_stream = None
    mal.state_body = b"\x00" * (9 * 1024 * 1024)
    await wait_until(lambda: "announced" in (link.last_error or ""), what="length refused")
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


def test_payloads_route_is_registered(tmp_path) -> None:
    """server.federation_app() mounts node/federation/payloads.py (the helpers add it
    for the other tests until it does)."""
    from node.home import initialise

    done = initialise(tmp_path / "n", name="n")
    app = create_app(load_config(done.config.home), done.identity)
    paths = {r.canonical for sub in app._subapps for r in sub.router.resources()}  # noqa: SLF001
    assert "/federation/v1/payloads" in paths
