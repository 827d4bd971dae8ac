"""Hostile peers and hostile requests against a real victim node.

Each case asserts that the victim's store is unchanged (entries and heads of every log
but the sentinel's) and that an honest peer is unaffected: a sentinel entry posted on
an honest node afterwards still arrives. A `MaliciousPeer` the victim trusts serves
crafted bytes; hostile requests are signed by hand with node.httpsig.sign_request.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import os
import struct
import time
from contextlib import redirect_stdout

import msgpack
import pytest
from federation_helpers import (
    Cluster,
    FedNode,
    MaliciousPeer,
    make_run,
    signed,
    wait_until,
)

from node.cli import main as cli_main
from protocol import (
    SIGNING_PREFIX,
    Entry,
    Identity,
    create_entry,
    decode_fork_proof,
    decode_header,
    encode,
    make_fork_proof,
)
from protocol.entry import MAX_HEADER_SIZE
from protocol.identity import sha256
from protocol.sync import Head, decode_frames, encode_frame, encode_want

# -- set-up ----------------------------------------------------------------------------


async def victim_setup(cluster: Cluster, *, honest_prefix: int = 1
                       ) -> tuple[FedNode, FedNode, MaliciousPeer, list[Entry]]:
    """Victim peered with an honest node and a malicious one; the victim already holds
    the first ``honest_prefix`` entries of the malicious peer's own log."""
    victim, honest = await cluster.start(2, prefix="v")
    await cluster.peer(victim, honest)
    mal = await MaliciousPeer().start(cluster)
    await victim.add_peer(mal.id, mal.url)
    prefix = make_run(mal.identity, honest_prefix)
    if prefix:
        mal.serve_entries(prefix)
        await wait_until(lambda: victim.head_seq(mal.identity.public) == honest_prefix,
                         what="victim holds the malicious peer's honest prefix")
    return victim, honest, mal, prefix


async def expect_refused(victim: FedNode, mal: MaliciousPeer, code: str) -> str:
    """Wait until the victim has pulled the crafted page and refused it with ``code``."""
    link = victim.node.gossip.links[mal.identity.public]
    since = time.time() * 1000
    pulls = mal.hits["pull"]

    def refused() -> str | None:
        fresh = (link.last_error_at or 0) >= since and mal.hits["pull"] > pulls
        return link.last_error if fresh and code in (link.last_error or "") else None

    return await wait_until(refused, what=f"victim refusing with {code} "
                            f"(last error: {link.last_error})")


async def sentinel_arrives(victim: FedNode, honest: FedNode) -> None:
    """An honest peer's entry, written after the attack, still reaches the victim."""
    offer = await honest.create(title="sentinel")
    got = await wait_until(lambda: victim.listing(offer["id"]), what="sentinel at victim")
    assert got["origin"] == honest.id
    status, _ = await victim.call("GET", "/healthz", expect=None)
    assert status == 200


def resign(entry: Entry, identity: Identity, header: dict | None = None,
           header_bytes: bytes | None = None) -> Entry:
    """Entry with a (possibly altered) header signed by ``identity``."""
    hb = header_bytes if header_bytes is not None else encode(header or entry.header.to_map())
    raw = hb + identity.sign(SIGNING_PREFIX + hb)
    return Entry(entry.header, raw, sha256(raw), entry.payload)


async def attack(victim: FedNode, honest: FedNode, mal: MaliciousPeer,
                 entries: list[Entry], code: str, *, page: bytes | None = None,
                 heads: dict[bytes, Head] | None = None) -> str:
    before = victim.snapshot(excluding=(honest.public,))
    mal.serve_entries(entries, page=page, heads=heads)
    error = await expect_refused(victim, mal, code)
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before
    return error


# -- crafted pages from a trusted peer ----------------------------------------------------


async def test_forged_signature(cluster: Cluster) -> None:
    victim, honest, mal, prefix = await victim_setup(cluster)
    [good] = make_run(mal.identity, 1, previous=prefix[-1], start=1)
    forged = resign(good, Identity.generate())  # right author field, wrong key
    await attack(victim, honest, mal, [forged], "bad-signature")


async def test_forged_tail_keeps_the_honest_prefix(cluster: Cluster) -> None:
    """Rejection is per entry: a run whose last entry is forged still lands up to it."""
    victim, honest, mal, prefix = await victim_setup(cluster)
    run = make_run(mal.identity, 3, previous=prefix[-1], start=1)
    run[-1] = resign(run[-1], Identity.generate())
    mal.serve_entries(run)
    await expect_refused(victim, mal, "bad-signature")
    # Seq 2 and 3 commit (the refusal is reported while they are being written) ...
    await wait_until(lambda: victim.head_seq(mal.identity.public) == 3, what="honest prefix")
    await sentinel_arrives(victim, honest)
    assert victim.head_seq(mal.identity.public) == 3  # ... and the forged seq 4 never does
    rows = victim.query("SELECT seq, id FROM entries WHERE author = ? ORDER BY seq",
                        (mal.identity.public,))
    assert rows == [(e.seq, e.id) for e in [*prefix, *run[:2]]]


async def test_broken_backlink(cluster: Cluster) -> None:
    victim, honest, mal, prefix = await victim_setup(cluster)
    fake_prev = Entry(prefix[-1].header, prefix[-1].raw, os.urandom(32))
    bad = create_entry(mal.identity, "profile", {"name": "relinked"}, previous=fake_prev)
    await attack(victim, honest, mal, [bad], "backlink-mismatch")


async def test_seq_gap(cluster: Cluster) -> None:
    victim, honest, mal, prefix = await victim_setup(cluster)
    run = make_run(mal.identity, 2, previous=prefix[-1], start=1)
    await attack(victim, honest, mal, run[1:], "seq-gap")  # seq 3 without seq 2


async def test_oversize_header_in_page(cluster: Cluster) -> None:
    """A frame whose signed header is over the size limit is refused by the decoder."""
    victim, honest, mal, prefix = await victim_setup(cluster)
    [good] = make_run(mal.identity, 1, previous=prefix[-1], start=1)
    page = encode_frame(good.raw + b"\x00" * (MAX_HEADER_SIZE + 1), good.payload)
    await attack(victim, honest, mal, [good], "header-too-large", page=page)


async def test_oversize_frame(cluster: Cluster) -> None:
    victim, honest, mal, prefix = await victim_setup(cluster)
    [good] = make_run(mal.identity, 1, previous=prefix[-1], start=1)
    page = encode_frame(good.raw, b"\x00" * (64 * 1024 + 1))
    await attack(victim, honest, mal, [good], "too-large", page=page)


async def test_non_canonical_frame(cluster: Cluster) -> None:
    """The same value with a longer bin length prefix: refused on the exact bytes."""
    victim, honest, mal, prefix = await victim_setup(cluster)
    [good] = make_run(mal.identity, 1, previous=prefix[-1], start=1)
    assert len(good.raw) < 256 and len(good.payload) < 256
    page = (b"\x92" + b"\xc5" + struct.pack(">H", len(good.raw)) + good.raw
            + b"\xc4" + bytes([len(good.payload)]) + good.payload)
    assert msgpack.unpackb(page) == [good.raw, good.payload]
    await attack(victim, honest, mal, [good], "non-canonical", page=page)


async def test_non_canonical_header_validly_signed(cluster: Cluster) -> None:
    """A header map with unsorted keys, signed over those very bytes, is still refused."""
    victim, honest, mal, prefix = await victim_setup(cluster)
    [good] = make_run(mal.identity, 1, previous=prefix[-1], start=1)
    m = good.header.to_map()
    unsorted = msgpack.packb(dict(reversed(list(m.items()))), use_bin_type=True)
    assert unsorted != good.header_bytes
    bad = resign(good, mal.identity, header_bytes=unsorted)
    await attack(victim, honest, mal, [bad], "non-canonical")


async def test_non_canonical_payload(cluster: Cluster) -> None:
    """A payload whose hash matches the header but whose bytes are not canonical."""
    victim, honest, mal, prefix = await victim_setup(cluster)
    payload = b"\x81\xa4name\xd9\x03bad"  # str8 where fixstr is the canonical form
    assert msgpack.unpackb(payload) == {"name": "bad"}
    [good] = make_run(mal.identity, 1, previous=prefix[-1], start=1)
    m = {**good.header.to_map(), "phash": sha256(payload), "psize": len(payload)}
    bad = resign(good, mal.identity, header=m)
    bad = Entry(bad.header, bad.raw, bad.id, payload)
    await attack(victim, honest, mal, [bad], "non-canonical")


async def test_garbage_page(cluster: Cluster) -> None:
    victim, honest, mal, _ = await victim_setup(cluster)
    [_, good] = make_run(mal.identity, 2)
    await attack(victim, honest, mal, [good], "FrameError", page=b"\xc1garbage" * 10)


async def test_page_of_entries_already_held_does_not_spin(cluster: Cluster) -> None:
    """A peer that advertises a longer log but keeps serving what we hold: the round
    ends (no endless re-pull) and nothing changes."""
    victim, honest, mal, prefix = await victim_setup(cluster, honest_prefix=3)
    before = victim.snapshot(excluding=(honest.public,))
    extra = make_run(mal.identity, 2, previous=prefix[-1], start=3)
    rounds = mal.hits["state"]
    mal.serve_entries(prefix, page=b"".join(encode_frame(e.raw, e.payload) for e in prefix),
                      heads={mal.identity.public: Head(extra[-1].seq, extra[-1].id)})
    await wait_until(lambda: mal.hits["state"] >= rounds + 3,
                     what="victim completing rounds with the peer")
    # Per round: one pull, plus one probe of the seq both hold (fork check); no loop.
    assert mal.hits["pull"] <= 2 * (mal.hits["state"] - rounds) + 2, mal.hits
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


async def test_invalid_fork_proof_in_state_is_ignored(cluster: Cluster) -> None:
    victim, honest, mal, prefix = await victim_setup(cluster)
    a = create_entry(mal.identity, "profile", {"name": "one"})
    b = create_entry(mal.identity, "profile", {"name": "two"})
    proof = make_fork_proof(a, b)
    tampered = resign(proof.second, Identity.generate())
    bogus = encode({"a": proof.first.raw, "b": tampered.raw}
                   if proof.first.id < tampered.id else
                   {"a": tampered.raw, "b": proof.first.raw})
    before = victim.snapshot(excluding=(honest.public,))
    rounds = mal.hits["state"]
    mal.forks = [bogus, b"\x01not a proof"]
    await wait_until(lambda: mal.hits["state"] >= rounds + 2, what="victim read the state")
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before
    assert (await victim.call("GET", "/api/v1/forks"))["forks"] == []


# -- hostile requests to the victim's federation API --------------------------------------


async def test_replayed_request(cluster: Cluster) -> None:
    victim, honest, mal, _ = await victim_setup(cluster, honest_prefix=0)
    before = victim.snapshot(excluding=(honest.public,))
    url = victim.url + "/federation/v1/pull"
    body = encode_want({honest.public: 0})
    status, _, hdrs = await signed(victim.session, mal.identity, "POST", url, body)
    assert status == 200
    status, problem, _ = await signed(victim.session, mal.identity, "POST", url, body,
                                      presigned=hdrs)
    assert status == 401 and problem["type"].endswith(":replayed"), problem
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


# Not ±301: `created` is whole seconds and the request takes time to arrive, so the edge
# itself is not observable to the second on a loaded machine.
@pytest.mark.parametrize("skew,expect", [(-310, 401), (310, 401), (-200, 200), (200, 200)])
async def test_clock_skew(cluster: Cluster, skew: int, expect: int) -> None:
    victim, honest, mal, _ = await victim_setup(cluster, honest_prefix=0)
    before = victim.snapshot(excluding=(honest.public,))
    created = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=skew)
    status, body, _ = await signed(victim.session, mal.identity, "GET",
                                   victim.url + "/federation/v1/state", created=created)
    assert status == expect, body
    if expect == 401:
        assert body["type"].endswith(":stale-signature"), body
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


async def test_untrusted_caller_refused_before_signature_work(cluster: Cluster) -> None:
    victim, honest, _, _ = await victim_setup(cluster, honest_prefix=0)
    before = victim.snapshot(excluding=(honest.public,))
    stranger = Identity.generate()
    url = victim.url + "/federation/v1/pull"
    body = encode_want({victim.public: 0})
    status, problem, _ = await signed(victim.session, stranger, "POST", url, body)
    assert status == 403 and problem["type"].endswith(":untrusted-caller")
    # A signature that could never verify still gets 403, not 401: trust is decided
    # from the keyid alone, before any signature or digest work.
    hdrs = {"Signature-Input": f'aidmesh=("@method" "@target-uri");created='
                               f'{int(time.time())};keyid="{stranger.node_id}";nonce="x"',
            "Signature": "aidmesh=:AAAA:"}
    async with victim.session.post(url, data=b"\xc1" * 100, headers=hdrs) as r:
        assert r.status == 403
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


async def test_garbage_bodies(cluster: Cluster) -> None:
    victim, honest, mal, _ = await victim_setup(cluster, honest_prefix=0)
    before = victim.snapshot(excluding=(honest.public,))
    url = victim.url + "/federation/v1/pull"
    garbage = b"\xc1\x00garbage\xff" * 8
    # Signed garbage: authenticated, then refused as a malformed pull request.
    status, problem, _ = await signed(victim.session, mal.identity, "POST", url, garbage)
    assert status == 400, problem
    # A valid pull request that is not canonical msgpack is refused too.
    non_canonical = b"\x81\xa4want\x81\xda\x00\x40" + victim.public.hex().encode() + b"\x00"
    status, problem, _ = await signed(victim.session, mal.identity, "POST", url,
                                      non_canonical)
    assert status == 400 and problem["type"].endswith(":non-canonical"), problem
    # Unsigned garbage.
    async with victim.session.post(url, data=garbage) as r:
        assert r.status == 401
    # Body swapped after signing: the Content-Digest no longer matches.
    hdrs = signed_headers(mal.identity, url, encode_want({victim.public: 0}))
    async with victim.session.post(url, data=garbage, headers=hdrs) as r:
        problem = await r.json(content_type=None)
        assert r.status == 401 and problem["type"].endswith(":bad-digest"), problem
    # Garbage signature headers from a trusted keyid.
    hdrs["Signature"] = "aidmesh=:" + "A" * 86 + "==:"
    async with victim.session.post(url, data=encode_want({victim.public: 0}),
                                   headers=hdrs) as r:
        assert r.status == 401
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


def signed_headers(identity: Identity, url: str, body: bytes) -> dict[str, str]:
    from node.federation.httpsig import sign_request

    return sign_request(identity, "POST", url, body)


async def test_oversize_body_is_413(cluster: Cluster) -> None:
    victim, honest, mal, _ = await victim_setup(cluster, honest_prefix=0)
    before = victim.snapshot(excluding=(honest.public,))
    url = victim.url + "/federation/v1/pull"
    big = b"\x00" * (1024 * 1024 + 1)
    status, problem, _ = await signed(victim.session, mal.identity, "POST", url, big)
    assert status == 413, problem

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(17):
            yield b"\x00" * 65536

    hdrs = signed_headers(mal.identity, url, b"\x00" * (17 * 65536))
    async with victim.session.post(url, data=chunks(), headers=hdrs) as r:
        assert r.status == 413
    await sentinel_arrives(victim, honest)
    assert victim.snapshot(excluding=(honest.public,)) == before


async def test_per_peer_rate_limit(cluster: Cluster) -> None:
    victim, honest, mal, _ = await victim_setup(cluster, honest_prefix=0)
    url = victim.url + "/federation/v1/state"
    # Sequential requests past the soft rate are paced; more than 3 at once get 429.
    results = await asyncio.gather(*(signed(victim.session, mal.identity, "GET", url)
                                     for _ in range(40)))
    statuses = [r[0] for r in results]
    assert statuses.count(429) >= 1 and statuses.count(200) >= 3, statuses
    problem = next(r[1] for r in results if r[0] == 429)
    assert problem["type"].endswith(":rate-limited")
    # The limit is per peer: the honest node's exchange is unaffected.
    await sentinel_arrives(victim, honest)


# -- forks -------------------------------------------------------------------------------


@pytest.mark.parametrize("copy_extra", [0, 2], ids=["same-length", "copy-longer"])
async def test_fork_from_a_copied_key(cluster: Cluster, copy_extra: int) -> None:
    """Two data dirs with the same node.key write different entries at the same seq.

    The victim first replicates the original's log; then it peers with a middle node
    that holds the copy's log. The victim sees the other version, stores a proof, shows
    it in the API and CLI, serves it, and a further node verifies it and freezes that
    author too. With the same length, the peer's head differs from ours at the same
    seq; with the copy longer, its run does not continue our head.
    """
    victim, middle, far = await cluster.start(3, prefix="f")
    original = await cluster.add("original")
    copy = await cluster.add("copy", key_from=original)
    assert copy.id == original.id
    # original: profile, offer, trust(victim); copy: offer, offer, [offers], trust(middle)
    await original.create(title="from the original")
    for i in range(2 + copy_extra):
        await copy.create(title=f"from the copy {i}")
    await cluster.peer(middle, copy)
    await wait_until(lambda: middle.head_seq(copy.public) == copy.head_seq(copy.public),
                     what="middle holds the copy's log")
    await cluster.peer(victim, original)
    await cluster.peer(victim, far)
    await wait_until(lambda: victim.head_seq(original.public) == 3,
                     what="victim holds the original's log")
    assert victim.query("SELECT count(*) FROM forks") == [(0,)]
    await cluster.peer(victim, middle)

    def forked(node: FedNode) -> bool:
        return bool(node.query("SELECT 1 FROM forks WHERE author = ?", (original.public,)))

    await wait_until(lambda: forked(victim), what="fork proof at the victim")
    forks = (await victim.call("GET", "/api/v1/forks"))["forks"]
    assert [f["author"] for f in forks] == [original.id]
    proof = decode_fork_proof(bytes.fromhex(forks[0]["proof"]))
    assert proof.author == original.public and proof.seq == forks[0]["seq"]
    assert proof.first.id != proof.second.id

    out = io.StringIO()
    with redirect_stdout(out):
        cli_main(["--home", str(victim.home), "status"])
    assert "FORKS" in out.getvalue() and original.id in out.getvalue()

    # Served to other peers, who verify the proof and freeze that author too; a node
    # that only learnt it from a proof passes it on in turn. Proofs are taken only for
    # authors in scope: the forked author is 3 trust hops from `further`.
    further = await cluster.add("further", hops=3)
    await cluster.peer(far, further)
    for node in (far, middle, original, copy, further):
        await wait_until(lambda n=node: forked(n), what=f"fork proof at {node.name}")
    for node in (far, further):
        got = (await node.call("GET", "/api/v1/forks"))["forks"]
        assert [(f["author"], f["seq"], f["proof"]) for f in got] == \
            [(f["author"], f["seq"], f["proof"]) for f in forks]

    # The log is frozen at the fork point: served only below it, never appended to.
    fork_seq = forks[0]["seq"]
    status, page, _ = await signed(far.session, far.identity, "POST",
                                   victim.url + "/federation/v1/pull",
                                   encode_want({original.public: 0}))
    assert status == 200
    assert [decode_header(raw).seq for raw, _ in decode_frames(page)] == \
        list(range(1, fork_seq))
    for node in (original, copy):
        status, problem = await node.call("POST", "/api/v1/offers",
                                          {"title": "more", "category": "food",
                                           "action": "transfer"}, expect=None)
        assert status == 409 and problem["type"].endswith(":log-frozen")
    # ... and every node keeps running and exchanging the other logs.
    await sentinel_arrives(victim, far)
    await sentinel_arrives(further, victim)
    for node in (victim, middle, far, original, copy, further):
        status, _ = await node.call("GET", "/healthz", expect=None)
        assert status == 200
