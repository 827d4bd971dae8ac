"""Expiry, erasure, moderation and blocks across three real nodes (issue 5, items 4-5)."""

from __future__ import annotations

from federation_helpers import Cluster, wait_until

from node.cli import main as cli
from node.services.moderation import erase_expired
from node.store.ledger import now_ms

FUTURE = "2099-01-01T00:00:00Z"




async def three(cluster: Cluster):
    a, b, c = await cluster.start(3)
    await cluster.line(a, b, c)
    return a, b, c


def payload_of(node, entry_id: str) -> bytes | None:
    rows = node.query("SELECT payload FROM entries WHERE id = ?", (bytes.fromhex(entry_id),))
    assert rows, f"{node.name} does not hold {entry_id}"
    return rows[0][0]


async def test_expired_offer_vanishes_everywhere_without_a_new_entry(cluster):
    a, b, c = await three(cluster)
    soon = now_ms() + 1500
    from node.services.values import rfc3339

    offer = await a.create(title="soup until soon", available_until=rfc3339(soon))
    keep = await a.create(title="bread for later", available_until=FUTURE)
    await wait_until(lambda: c.has_offer(keep["id"]), what="offers at C")
    # Only A's own log matters: other logs may still be replicating (trust entries).
    own = a.identity.node_id
    head_before = (await a.logs())[own]
    for node in (a, b, c):
        listed = await node.call("GET", "/api/v1/offers")
        assert offer["id"] in {i["id"] for i in listed["items"]}

    async def gone_everywhere():
        for node in (a, b, c):
            listed = await node.call("GET", "/api/v1/offers")
            if offer["id"] in {i["id"] for i in listed["items"]}:
                return False
        return True

    await wait_until(gone_everywhere, timeout=10, what="expiry on every node")
    for node in (a, b, c):
        expired = await node.call("GET", "/api/v1/offers?status=expired")
        assert [i["id"] for i in expired["items"]] == [offer["id"]]
        assert (await node.listing(offer["id"]))["status"] == "expired"
        still = await node.call("GET", "/api/v1/offers")
        assert keep["id"] in {i["id"] for i in still["items"]}
    assert (await a.logs())[own] == head_before  # no entry was needed


async def test_retention_erases_expired_payloads_and_logs_still_verify(cluster, capsys):
    (a,) = await cluster.start(1)
    from node.services.values import rfc3339

    old = await a.create(title="long gone", available_until=rfc3339(now_ms() + 200))
    fresh = await a.create(title="still here", available_until=FUTURE)
    store = a.node.store
    # Nothing has been expired for 30 days yet.
    assert await store.write(lambda c: erase_expired(c, 30, now_ms())) == 0
    later = now_ms() + 31 * 86_400_000
    assert await store.write(lambda c: erase_expired(c, 30, later)) == 1
    assert payload_of(a, old["id"]) is None
    assert payload_of(a, fresh["id"]) is not None
    assert await a.listing(old["id"]) is None
    await a.stop()
    assert cli(["--home", str(a.home), "log", "verify"]) == 0
    assert "ok:" in capsys.readouterr().out


async def test_author_redact_erases_payload_on_every_honest_node(cluster, capsys):
    a, b, c = await three(cluster)
    offer = await a.create(title="address accidentally in the title", available_until=FUTURE)
    await wait_until(lambda: c.has_offer(offer["id"]), what="offer at C")
    status, problem = await c.call("POST", f"/api/v1/offers/{offer['id']}/redact", {},
                                   expect=None)
    assert status == 403 and problem["type"].endswith("not-origin")
    await a.call("POST", f"/api/v1/offers/{offer['id']}/redact",
                 {"reason": "posted by mistake"}, 204)

    async def erased_everywhere():
        for node in (a, b, c):
            if payload_of(node, offer["id"]) is not None or await node.has_offer(offer["id"]):
                return False
        return True

    await wait_until(erased_everywhere, what="payload erased on A, B and C")
    for node in (a, b, c):
        assert node.query("SELECT count(*) FROM entries WHERE id = ?",
                          (bytes.fromhex(offer["id"]),))[0][0] == 1  # the header stays
    for node in (a, b, c):
        await node.stop()
        assert cli(["--home", str(node.home), "log", "verify"]) == 0
    assert capsys.readouterr().out.count("ok:") == 3


async def test_admin_hides_and_erases_a_remote_entry_locally(cluster):
    a, b = await cluster.start(2)
    await cluster.peer(a, b)
    one = await a.create(title="spam one", available_until=FUTURE)
    two = await a.create(title="spam two", available_until=FUTURE)
    await wait_until(lambda: b.has_offer(two["id"]), what="offers at B")

    await b.call("POST", "/api/v1/moderation", {"id": one["id"], "action": "hide",
                                                "reason": "spam"}, 201)
    listed = await b.call("GET", "/api/v1/offers")
    assert one["id"] not in {i["id"] for i in listed["items"]}
    assert payload_of(b, one["id"]) is not None  # hidden, not erased
    await b.call("DELETE", f"/api/v1/moderation/{one['id']}", expect=204)
    listed = await b.call("GET", "/api/v1/offers")
    assert one["id"] in {i["id"] for i in listed["items"]}

    await b.call("POST", "/api/v1/moderation", {"id": two["id"], "action": "erase"}, 201)
    assert payload_of(b, two["id"]) is None
    assert payload_of(a, two["id"]) is not None  # moderation is local, never replicated
    status, problem = await b.call("DELETE", f"/api/v1/moderation/{two['id']}", expect=None)
    assert status == 409 and problem["type"].endswith("erased")
    # bad input: nothing recorded
    for body, code in (({"id": "zz", "action": "hide"}, 422),
                       ({"id": one["id"], "action": "burn"}, 422),
                       ({"id": "ab" * 32, "action": "hide"}, 404),
                       ({"id": one["id"], "action": "hide", "extra": 1}, 422)):
        status, problem = await b.call("POST", "/api/v1/moderation", body, expect=None)
        assert status == code and problem["status"] == code
    assert len((await b.call("GET", "/api/v1/moderation"))["moderation"]) == 1


async def test_blocked_author_is_no_longer_stored_or_relayed(cluster):
    a, b, c = await three(cluster)
    first = await a.create(title="before the block", available_until=FUTURE)
    await wait_until(lambda: c.has_offer(first["id"]), what="first offer at C")

    await b.call("POST", "/api/v1/blocks", {"author": a.id, "reason": "abuse"}, 201)
    listed = await b.call("GET", "/api/v1/offers")
    assert first["id"] not in {i["id"] for i in listed["items"]}
    blocked_seq = b.head_seq(a.public)

    second = await a.create(title="after the block", available_until=FUTURE)
    sentinel = await c.create(title="honest sentinel", available_until=FUTURE)
    await wait_until(lambda: b.has_offer(sentinel["id"]), what="sentinel from C at B")
    await wait_until(lambda: a.has_offer(sentinel["id"]), what="sentinel relayed to A")
    assert b.head_seq(a.public) == blocked_seq  # A's new entries are not stored at B
    assert not await c.has_offer(second["id"])  # and B, the only route, does not relay them

    # the block list, its errors, and lifting it
    blocks = (await b.call("GET", "/api/v1/blocks"))["blocks"]
    assert [x["author"] for x in blocks] == [a.id]
    for body in ({"author": "nope"}, {"reason": "x"}, {"author": b.id}):
        status, problem = await b.call("POST", "/api/v1/blocks", body, expect=None)
        assert status == 422 and "detail" in problem
    await b.call("DELETE", f"/api/v1/blocks/{a.id}", expect=204)
    await wait_until(lambda: c.has_offer(second["id"]), timeout=20,
                     what="A's offer at C once unblocked")


async def test_block_and_moderation_need_admin(cluster):
    (a,) = await cluster.start(1)
    token = (await a.call("POST", "/api/v1/tokens", {"role": "coordinator"}, 201))["token"]
    async with a.session.post(a.url + "/api/v1/blocks", json={"author": "am" + "ab" * 32},
                              headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 403
        assert r.content_type == "application/problem+json"
    assert (await a.call("GET", "/api/v1/blocks"))["blocks"] == []
