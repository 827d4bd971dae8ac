"""Missing payloads in the store (spec §13.4): marked, explained, filled, repaired on upgrade,
and served by POST /federation/v1/payloads. Real SQLite files and real nodes."""

from __future__ import annotations

import os

from conftest import NodeHome, make_log
from federation_helpers import Cluster, MaliciousPeer, signed, wait_until

from node.store.ledger import mark_erased
from protocol import Entry, Identity, canonical, create_entry
from protocol.sync import decode_frames, encode_payload_request

OFFER = {"title": "Fresh bread", "category": "food/bread", "action": "transfer"}


def stripped(entries: list[Entry], *drop: Entry) -> list[Entry]:
    """The entries as a relay that sends nil for ``drop`` would deliver them."""
    ids = {e.id for e in drop}
    return [e.without_payload() if e.id in ids else e for e in entries]


def missing(home: NodeHome) -> set[bytes]:
    return {r[0] for r in home.query("SELECT id FROM payload_missing")}


def remote_log(identity: Identity) -> list[Entry]:
    """profile, offer, update of the offer (a new title)."""
    profile, offer = make_log(identity, [("profile", {"name": "far"}), ("offer", OFFER)])
    update = create_entry(identity, "update", {"target": offer.id,
                                               "set": {"title": "brown bread"}},
                          previous=offer)
    return [profile, offer, update]


def test_nil_payloads_are_missing_unless_their_log_redacted_them(make_home) -> None:
    home = make_home()
    far = Identity.generate()
    profile, offer, update = remote_log(far)
    home.ingest(stripped([profile, offer], profile, offer))
    assert missing(home) == {profile.id, offer.id}
    # The author's redact, in a later batch, explains the offer's nil; not the profile's.
    redact = create_entry(far, "redact", {"target": offer.id}, previous=update)
    home.ingest([update, redact])
    assert missing(home) == {profile.id}
    # In the same batch as the redact, a nil is redacted from the start.
    other = Identity.generate()
    p2, o2 = make_log(other, [("profile", {"name": "o"}), ("offer", OFFER)])
    r2 = create_entry(other, "redact", {"target": o2.id}, previous=o2)
    home.ingest(stripped([p2, o2, r2], o2))
    assert missing(home) == {profile.id}
    # A redact by another author explains nothing.
    p3, o3 = make_log(Identity.generate(), [("profile", {"name": "x"}), ("offer", OFFER)])
    home.ingest(stripped([p3, o3], o3))
    assert missing(home) == {profile.id, o3.id}


def test_a_filled_payload_is_checked_then_folded_with_what_came_after(make_home) -> None:
    home = make_home()
    far = Identity.generate()
    profile, offer, update = remote_log(far)
    home.ingest(stripped([profile, offer, update], offer))
    assert home.query("SELECT count(*) FROM listings WHERE id = ?", (offer.id.hex(),)) == [(0,)]
    ledger = home.ledger()
    try:
        before = home.snapshot()
        wrong = os.urandom(len(offer.payload))
        stray = create_entry(Identity.generate(), "profile", {"name": "stray"})
        got = ledger.transaction(lambda c: ledger.fill_payloads(
            c, [(offer.raw, wrong), (stray.raw, stray.payload), (profile.raw, profile.payload),
                (offer.raw, None)]))
        assert got == (0, 3)  # bad hash, unknown entry, nil: refused; not missing: skipped
        assert home.snapshot() == before and missing(home) == {offer.id}
        got = ledger.transaction(lambda c: ledger.fill_payloads(c, [(offer.raw, offer.payload)]))
        assert got == (1, 0)
    finally:
        ledger.close()
    assert missing(home) == set()
    # The update folded before the offer's payload was there is applied after it.
    assert home.query("SELECT title FROM listings WHERE id = ?",
                      (offer.id.hex(),)) == [("brown bread",)]


def test_an_erased_payload_is_never_taken_back(make_home) -> None:
    home = make_home()
    far = Identity.generate()
    profile, offer, _ = remote_log(far)
    home.ingest(stripped([profile, offer], offer))
    ledger = home.ledger()
    try:
        ledger.transaction(lambda c: mark_erased(c, offer.id))
        assert missing(home) == set()
        got = ledger.transaction(lambda c: ledger.fill_payloads(c, [(offer.raw, offer.payload)]))
        assert got == (0, 0)  # not wanted any more: skipped
    finally:
        ledger.close()
    assert home.query("SELECT payload FROM entries WHERE id = ?", (offer.id,)) == [(None,)]


def test_upgrade_marks_the_damage_of_older_versions(make_home) -> None:
    """Schema 5 stored a relay's nil as if redacted: the migration marks those missing,
    but not what a redact or a moderation erase explains."""
    home = make_home()
    far = Identity.generate()
    profile, offer, update = remote_log(far)
    o2 = create_entry(far, "offer", OFFER, previous=update)
    o3 = create_entry(far, "offer", OFFER, previous=o2)
    redact = create_entry(far, "redact", {"target": o2.id}, previous=o3)
    home.ingest([profile, offer, update, o2, o3, redact])
    ledger = home.ledger()
    try:
        def damage(c):
            c.execute("UPDATE entries SET payload = NULL WHERE id IN (?, ?)",
                      (offer.id, o3.id))
            c.execute("INSERT INTO moderation (id, action, reason, created) VALUES "
                      "(?, 'erase', '', 0)", (o3.id.hex(),))
            c.execute("DROP TABLE payload_missing")
            c.execute("DROP TABLE erased")
            c.execute("ALTER TABLE peer_state DROP COLUMN rejected")
            c.execute("DROP TABLE federation_nonces")  # schema 7
        ledger.conn.execute("BEGIN")  # by hand: the schema is taken back to version 5
        damage(ledger.conn)
        ledger.conn.execute("COMMIT")
        ledger.conn.execute("PRAGMA user_version = 5")
    finally:
        ledger.close()
    ledger = home.ledger()  # migrates to the current schema
    ledger.close()
    assert missing(home) == {offer.id}  # not o2 (redacted), not o3 (erased here)


async def test_payloads_endpoint(cluster: Cluster) -> None:
    """POST /federation/v1/payloads answers the payloads it holds, nothing it erased or
    lacks, and refuses malformed requests with 400 and the protocol code."""
    node = await cluster.add("server")
    caller = MaliciousPeer()
    await node.add_peer(caller.id, "http://127.0.0.1:9")
    kept = await node.create(title="kept")
    gone = await node.create(title="gone")
    await node.call("POST", f"/api/v1/offers/{gone['id']}/redact", expect=204)
    url = node.url + "/federation/v1/payloads"
    ids = [bytes.fromhex(kept["id"]), bytes.fromhex(gone["id"]), os.urandom(32)]
    before = node.snapshot()
    status, body, _ = await signed(node.session, caller.identity, "POST", url,
                                   encode_payload_request(ids))
    assert status == 200
    frames = decode_frames(body)
    raw = node.query("SELECT raw, payload FROM entries WHERE id = ?", (ids[0],))
    assert frames == [raw[0]]
    for request, code in [(b"\x81\xa3ids\x90", "bad-payload-request"),
                          (canonical.encode({"ids": sorted(ids[:2])[::-1]}), "non-canonical"),
                          (b"\xc1", "malformed")]:
        status, problem, _ = await signed(node.session, caller.identity, "POST", url, request)
        assert status == 400, problem
        assert problem["type"] == f"urn:aidmesh:problem:{code}", problem
    assert node.snapshot() == before
    await wait_until(lambda: node.head_seq(node.public) > 0, what="node still serving")
