"""The event journal on the wire: SSE stream (replay, resume, filter) and outbound webhooks.

Real nodes and a real aiohttp receiver on 127.0.0.1; entries of other nodes' logs go in
through the running store, as gossip would put them. Nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from aiohttp import ClientError, ClientResponse, web
from conftest import NEED, OFFER, expect_problem, make_log, wait_for

from node.runtime import NODE
from protocol import Identity

BABY_OFFER = {**OFFER, "title": "Formula, 3 tins", "category": "food/baby",
              "quantity": {"value": "3", "unit": "tins"}}


async def ingest(node, identity: Identity, items: list[tuple[str, Any]], previous=None):
    """Store entries of another node's log through the running store (as gossip does)."""
    entries = make_log(identity, items, previous=previous)
    store = node.app[NODE].store
    await store.write(lambda c: store.ledger.ingest(c, identity.public, entries))
    await store.caught_up()  # stored first; the projector folds it into events after
    return entries


class SSE:
    """A minimal EventSource: parses `id:` / `event:` / `data:` blocks from a response."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        message: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("stream ended")
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if "data" in message:
                        return message
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                key, _, value = line.partition(": ")
                if key == "data":
                    message["data"] = json.loads(value)
                else:
                    message[key] = value

    async def until(self, predicate, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Messages up to and including the first one for which predicate is true."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            seen.append(await self.next(max(0.1, deadline - time.monotonic())))
            if predicate(seen[-1]):
                return seen

    def close(self) -> None:
        self.response.close()


async def open_stream(node, query: str = "", role: str | None = "reader",
                      last_event_id: int | None = None) -> SSE:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    r = await node.get(f"/api/v1/events{query}", role=role, headers=headers)
    assert r.status == 200, await r.text()
    assert r.content_type == "text/event-stream"
    return SSE(r)


def event_ids(node, after: int = 0, types: tuple[str, ...] | None = None) -> list[int]:
    rows = node.home.query("SELECT id, type FROM events WHERE id > ? ORDER BY id", (after,))
    return [i for i, t in rows if types is None or t in types]


# -- SSE --------------------------------------------------------------------------------------


async def test_stream_delivers_a_new_match(node):
    stream = await open_stream(node)
    need = await node.create("need")
    other = Identity.generate()
    [offer] = await ingest(node, other, [("offer", BABY_OFFER)])
    got = await stream.until(lambda m: m["event"] == "match")
    stream.close()
    match = got[-1]
    # One event per listing that gained matches, carrying them best first.
    assert match["data"]["data"] == {
        "listing": offer.id.hex(), "kind": "offer", "count": 1,
        "matches": [{"need": need["id"], "offer": offer.id.hex(), "distance_km": None}]}
    assert match["id"] == str(match["data"]["id"])
    listings = [m["data"]["data"] for m in got if m["event"] == "listing"]
    assert [(x["id"], x["change"]) for x in listings] == [
        (need["id"], "created"), (offer.id.hex(), "created")]
    # a listing event carries the listing as the API shows it
    assert listings[1]["listing"]["title"] == BABY_OFFER["title"]
    assert listings[1]["listing"]["origin"] == other.node_id
    ids = [int(m["id"]) for m in got]
    assert ids == sorted(ids) == event_ids(node)[:len(ids)]
    from test_openapi import SPEC, check

    for m in got:  # each message's data is the documented Event
        check(m["data"], SPEC["components"]["schemas"]["Event"])


async def test_stream_resumes_with_last_event_id_without_loss_or_duplicates(node):
    first = await node.create("need")
    other = Identity.generate()
    log = await ingest(node, other, [("offer", BABY_OFFER)])
    stream = await open_stream(node, "?after=0")
    got = await stream.until(lambda m: m["event"] == "match")
    stream.close()  # the client goes away ...
    last = int(got[-1]["id"])
    # ... while the node keeps committing events
    await node.create("need", title="Second need")
    await node.patch(f"/api/v1/needs/{first['id']}", json={"title": "Formula, urgent"})
    log += await ingest(node, other, [("offer", {**BABY_OFFER, "title": "More"})],
                        previous=log[-1])
    total = event_ids(node)
    assert len(total) > len(got) + 3
    stream = await open_stream(node, last_event_id=last)
    rest = [await stream.next() for _ in range(len(total) - len(got))]
    ids = [int(m["id"]) for m in got + rest]
    assert ids == total  # every event once, in commit order
    # Last-Event-ID wins over ?after
    again = await open_stream(node, "?after=0", last_event_id=total[-2])
    assert int((await again.next())["id"]) == total[-1]
    # and it then streams what is committed next
    await node.create("offer", title="Live")
    live = await again.next()
    assert live["event"] == "listing" and live["data"]["data"]["listing"]["title"] == "Live"
    again.close()
    stream.close()


async def test_stream_without_a_cursor_starts_at_now(node):
    await node.create("offer")
    stream = await open_stream(node)
    await node.create("offer", title="After connect")
    message = await stream.next()
    stream.close()
    assert message["data"]["data"]["listing"]["title"] == "After connect"
    assert int(message["id"]) == event_ids(node)[-1]


async def test_stream_types_filter(node):
    stream = await open_stream(node, "?types=match,claim")
    need = await node.create("need")
    await ingest(node, Identity.generate(), [("offer", BABY_OFFER)])
    message = await stream.next()
    stream.close()
    assert message["event"] == "match"
    assert message["data"]["data"]["matches"][0]["need"] == need["id"]
    assert int(message["id"]) == event_ids(node, types=("match",))[0]


@pytest.mark.parametrize("query,headers,field", [
    ("?types=listing,bogus", {}, "types"),
    ("?types=", {}, "types"),
    ("?after=-1", {}, "after"),
    ("?after=x", {}, "after"),
    ("", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
    ("?since=3", {}, "since"),
])
async def test_stream_bad_parameters(node, query, headers, field):
    r = await node.get(f"/api/v1/events{query}", role="reader", headers=headers)
    code = "unknown-parameter" if field == "since" else "invalid-parameter"
    await expect_problem(r, 400, code, field=field)


async def test_stream_needs_a_reader_token(make_node):
    node = await make_node()
    await expect_problem(await node.get("/api/v1/events", role=None), 401, "unauthorized")
    await expect_problem(await node.get("/api/v1/events", token="nope"), 401, "unauthorized")
    # open_read opens offers and needs only (README): the stream still needs a token.
    open_node = await make_node("open", open_read=True)
    await expect_problem(await open_node.get("/api/v1/events", role=None), 401, "unauthorized")
    stream = await open_stream(open_node)
    stream.close()


async def test_open_stream_does_not_hold_up_shutdown(make_node):
    node = await make_node()
    stream = await open_stream(node)
    started = time.monotonic()
    await asyncio.wait_for(node.close(), 10)
    assert time.monotonic() - started < 5
    with pytest.raises((EOFError, ConnectionError, OSError, ClientError)):
        await stream.next(timeout=5)


async def test_stream_keepalive_pings(node, monkeypatch):
    from node.http import events as events_api

    monkeypatch.setattr(events_api, "PING_INTERVAL_S", 0.05)
    stream = await open_stream(node)
    async with asyncio.timeout(5):
        while not (await stream.response.content.readline()).startswith(b": ping"):
            pass
    stream.close()


# -- webhooks -------------------------------------------------------------------------------


class Receiver:
    """A real HTTP receiver: records deliveries per path; answers `fail` 500s first."""

    def __init__(self) -> None:
        self.got: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        self.attempts: dict[str, int] = {}
        self.fail: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        body = await request.read()
        self.attempts[path] = self.attempts.get(path, 0) + 1
        if self.fail.get(path, 0) > 0:
            self.fail[path] -= 1
            return web.Response(status=500)
        self.got.setdefault(path, []).append((dict(request.headers), body))
        return web.Response(status=204)

    def events(self, path: str, secret: str) -> list[dict[str, Any]]:
        out = []
        for headers, body in self.got.get(path, []):
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Aidmesh-Signature"], expected)
            event = json.loads(body)
            assert headers["X-Aidmesh-Event-Id"] == str(event["id"])
            assert headers["X-Aidmesh-Event-Type"] == event["type"]
            assert headers["Content-Type"] == "application/json"
            out.append(event)
        return out


@pytest.fixture
async def node(make_node):
    """The receivers below listen on this machine, which webhooks may call only when the
    config allows it (node/outbound.py)."""
    return await make_node(webhook_allow_local=True)


@pytest.fixture
async def receiver(aiohttp_server):
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", recv.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    recv.url = str(server.make_url("/"))
    return recv


async def add_hook(node, url: str, **body: Any) -> dict[str, Any]:
    return await node.json("POST", "/api/v1/webhooks", 201, json={"url": url, **body})


async def test_webhook_delivers_signed_events_in_order(node, receiver):
    before = event_ids(node)
    hook = await add_hook(node, receiver.url + "all")
    assert len(hook["secret"]) >= 32 and hook["failures"] == 0 and hook["types"] is None
    matches = await add_hook(node, receiver.url + "matches", types=["match"])
    listed = await node.json("GET", "/api/v1/webhooks")
    assert [h["id"] for h in listed["webhooks"]] == [hook["id"], matches["id"]]
    assert all("secret" not in h for h in listed["webhooks"])
    need = await node.create("need")
    for i in range(3):
        await node.create("offer", title=f"Offer {i}")
    [offer] = await ingest(node, Identity.generate(), [("offer", BABY_OFFER)])
    wanted = event_ids(node, after=before[-1] if before else 0)
    await wait_for(lambda: len(receiver.got.get("/all", [])) >= len(wanted), what="deliveries")
    got = receiver.events("/all", hook["secret"])
    assert [e["id"] for e in got] == wanted  # only events after creation, in order, once
    assert got[0]["data"]["listing"]["id"] == need["id"]
    await wait_for(lambda: receiver.got.get("/matches"), what="the match")
    [match] = receiver.events("/matches", matches["secret"])
    assert match["type"] == "match" and match["data"]["listing"] == offer.id.hex()
    await wait_for(lambda: node.home.query(
        "SELECT delivered FROM webhooks WHERE id = ?", (hook["id"],))[0][0] == wanted[-1],
        what="saved cursor")
    listed = await node.json("GET", "/api/v1/webhooks")
    assert listed["webhooks"][0]["delivered"] == wanted[-1]
    assert listed["webhooks"][0]["last_success"] is not None


async def test_webhook_retries_a_failing_receiver_and_keeps_order(node, receiver):
    node.app[NODE].webhooks.BACKOFF_START_S = 0.02
    receiver.fail["/flaky"] = 4
    hook = await add_hook(node, receiver.url + "flaky")
    for i in range(3):
        await node.create("offer", title=f"Offer {i}")
    wanted = event_ids(node)
    await wait_for(lambda: len(receiver.got.get("/flaky", [])) >= 3, what="deliveries")
    assert [e["id"] for e in receiver.events("/flaky", hook["secret"])] == wanted
    assert receiver.attempts["/flaky"] == 4 + 3
    [row] = (await node.json("GET", "/api/v1/webhooks"))["webhooks"]
    assert row["failures"] == 0 and row["last_error"] == "receiver answered HTTP 500"


async def test_webhook_backoff_grows_and_is_capped(node):
    hooks = node.app[NODE].webhooks
    delays = [hooks.backoff(n) for n in range(1, 20)]
    assert 0.5 <= delays[0] < 1.0
    assert all(hooks.BACKOFF_START_S * 2 ** (n - 1) / 2 <= d < hooks.BACKOFF_START_S * 2 ** (n - 1)
               for n, d in enumerate(delays[:8], start=1))
    assert max(delays) < hooks.BACKOFF_CAP_S


async def test_webhook_cursor_survives_a_restart(node, receiver):
    hook = await add_hook(node, receiver.url + "r")
    await node.create("offer")
    await wait_for(lambda: len(receiver.got.get("/r", [])) == 1, what="first delivery")
    home = node.home
    await node.close()
    # events committed while the node is down (another process wrote the file)
    home.ingest(make_log(Identity.generate(), [("offer", BABY_OFFER)]))
    node = await node.restart()
    await node.create("offer", title="After restart")
    wanted = event_ids(node)
    await wait_for(lambda: len(receiver.got.get("/r", [])) >= len(wanted), what="deliveries")
    assert [e["id"] for e in receiver.events("/r", hook["secret"])] == wanted


async def test_deleted_webhook_gets_nothing_more(node, receiver):
    gone = await add_hook(node, receiver.url + "gone")
    kept = await add_hook(node, receiver.url + "kept")
    await node.create("offer")
    await wait_for(lambda: len(receiver.got.get("/gone", [])) == 1, what="first delivery")
    r = await node.delete(f"/api/v1/webhooks/{gone['id']}")
    assert r.status == 204
    await expect_problem(await node.delete(f"/api/v1/webhooks/{gone['id']}"), 404,
                         "not-found")
    assert gone["id"] not in node.app[NODE].webhooks.tasks
    await node.create("offer", title="Sentinel")
    await wait_for(lambda: len(receiver.got.get("/kept", [])) == 2, what="the sentinel")
    assert len(receiver.got["/gone"]) == 1
    assert [h["id"] for h in (await node.json("GET", "/api/v1/webhooks"))["webhooks"]] == [
        kept["id"]]


async def test_deleting_stops_retries(node, receiver):
    node.app[NODE].webhooks.BACKOFF_START_S = 0.02
    receiver.fail["/down"] = 10**6
    hook = await add_hook(node, receiver.url + "down")
    await node.create("offer")
    await wait_for(lambda: receiver.attempts.get("/down", 0) >= 2, what="retries")
    await node.delete(f"/api/v1/webhooks/{hook['id']}")
    attempts = receiver.attempts["/down"]
    await add_hook(node, receiver.url + "sentinel")
    await node.create("offer", title="Sentinel")
    await wait_for(lambda: receiver.got.get("/sentinel"), what="the sentinel")
    assert receiver.attempts["/down"] == attempts


@pytest.mark.parametrize("body,code,field", [
    ({"url": "ftp://example.org/hook"}, "invalid-field", "url"),
    ({"url": "file:///etc/passwd"}, "invalid-field", "url"),
    ({"url": "not a url"}, "invalid-field", "url"),
    ({"url": "http://"}, "invalid-field", "url"),
    ({"url": "http://user:pw@example.org/"}, "invalid-field", "url"),
    ({"url": 5}, "invalid-field", "url"),
    ({}, "invalid-field", "url"),
    ({"url": "http://example.org/" + "a" * 2100}, "invalid-field", "url"),
    ({"url": "https://example.org/", "types": ["bogus"]}, "invalid-field", "types"),
    ({"url": "https://example.org/", "types": []}, "invalid-field", "types"),
    ({"url": "https://example.org/", "types": "match"}, "invalid-field", "types"),
    ({"url": "https://example.org/", "secret": "x"}, "unknown-field", "secret"),
])
async def test_bad_webhook_is_refused(node, body, code, field):
    before = node.home.snapshot()
    r = await node.post("/api/v1/webhooks", json=body)
    await expect_problem(r, 422, code, field=field)
    assert node.home.query("SELECT count(*) FROM webhooks") == [(0,)]
    assert node.home.snapshot() == before


async def test_webhooks_need_admin(node):
    for role in ("reader", "coordinator"):
        r = await node.post("/api/v1/webhooks", json={"url": "https://example.org/"},
                            role=role)
        await expect_problem(r, 403, "forbidden")
        await expect_problem(await node.get("/api/v1/webhooks", role=role), 403, "forbidden")
    await expect_problem(await node.get("/api/v1/webhooks", role=None), 401, "unauthorized")


async def test_a_dead_receiver_does_not_hold_up_others(node, receiver, unused_tcp_port):
    node.app[NODE].webhooks.BACKOFF_START_S = 0.02
    await add_hook(node, f"http://127.0.0.1:{unused_tcp_port}/nobody")
    hook = await add_hook(node, receiver.url + "alive")
    need = await node.create("need", body=NEED)
    await wait_for(lambda: receiver.got.get("/alive"), what="delivery")
    assert receiver.events("/alive", hook["secret"])[0]["data"]["id"] == need["id"]
    rows = await node.json("GET", "/api/v1/webhooks")
    await wait_for(lambda: node.home.query(
        "SELECT failures FROM webhooks WHERE url LIKE '%nobody'")[0][0] > 0, what="failures")
    assert len(rows["webhooks"]) == 2


async def test_live_responses_match_the_documented_schemas(node):
    from test_openapi import call

    base, item = "/api/v1/webhooks", "/api/v1/webhooks/{id}"
    made = await call(node, "POST", base, base, 201, json={"url": "https://example.org/h",
                                                           "types": ["match", "listing"]})
    await call(node, "POST", base, base, 422, "invalid-field", json={"url": "gopher://x"})
    await call(node, "POST", base, base, 403, "forbidden", json={"url": "https://example.org/"},
               role="reader")
    await call(node, "GET", base, base, 200)
    await call(node, "GET", base, base, 401, "unauthorized", role=None)
    await call(node, "DELETE", f"{base}/{made['id']}", item, 204)
    await call(node, "DELETE", f"{base}/{made['id']}", item, 404, "not-found")
    await call(node, "GET", "/api/v1/events?types=x", "/api/v1/events", 400,
               "invalid-parameter")
    await call(node, "GET", "/api/v1/events", "/api/v1/events", 401, "unauthorized",
               role=None)


async def test_a_webhook_to_this_machine_is_refused_unless_allowed(make_node, receiver):
    node = await make_node()  # webhook_allow_local is off by default
    hook = await add_hook(node, receiver.url + "local")
    await node.create("offer", body=OFFER)

    async def refused() -> str | None:
        hooks = (await node.json("GET", "/api/v1/webhooks"))["webhooks"]
        error = next(h for h in hooks if h["id"] == hook["id"])["last_error"]
        return error if error and "refused address" in error else None

    error = await wait_for(refused, what="the refusal in the webhook's status")
    assert "webhook_allow_local" in error
    assert receiver.got.get("/local") is None
