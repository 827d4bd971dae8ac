"""Who may use a node's federation API, and what a refused request costs (spec 14.4).

Each refused request gets its exact status and problem type and changes nothing: the
victim's store (every log but the honest sentinel's) and the nonces it holds for the
caller are as before, and an honest peer's entry still arrives afterwards. A request is
charged to the peer it names only once it is authenticated, so neither slow bodies nor
junk signatures under a peer's keyid can turn that peer's genuine requests into 429;
replay protection survives a restart.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from conftest import assert_problem
from federation_helpers import Cluster, FedNode, MaliciousPeer, signed, wait_until
from http_message_signatures import HTTPMessageSigner, algorithms

from node.app import create_app
from node.federation.httpsig import _Keys, _Message, sign_request
from node.federation.server import FAILURE_BURST, Failures, address_key
from node.store import nonces
from node.store.db import connect, migrate
from protocol import Identity
from protocol.sync import encode_want

PROBLEM = "urn:aidmesh:problem:"

# -- set-up and what "nothing changed" means ----------------------------------------------


async def victim_setup(cluster: Cluster) -> tuple[FedNode, FedNode, MaliciousPeer]:
    """A victim peered with an honest node, and trusting ``mal``: a peer whose key the
    test holds, so it can send both genuine and hostile requests under its keyid."""
    victim, honest = await cluster.start(2, prefix="v")
    await cluster.peer(victim, honest)
    mal = await MaliciousPeer().start(cluster)
    await victim.add_peer(mal.id, mal.url)
    await wait_until(lambda: mal.identity.public in victim.node.gossip.trusted(),
                     what="victim trusts the peer")
    return victim, honest, mal


def nonces_of(victim: FedNode, caller: bytes) -> int:
    if not victim.query("SELECT 1 FROM sqlite_master WHERE name = 'federation_nonces'"):
        return 0
    return victim.query("SELECT count(*) FROM federation_nonces WHERE caller = ?",
                        (caller,))[0][0]


def observed(victim: FedNode, honest: FedNode, mal: MaliciousPeer) -> dict[str, Any]:
    """Everything a request from ``mal`` could change at the victim."""
    return {"store": victim.snapshot(excluding=(honest.public,)),
            "nonces": nonces_of(victim, mal.identity.public)}


async def sentinel_arrives(victim: FedNode, honest: FedNode) -> None:
    """An honest peer's entry, written after the attack, still reaches the victim."""
    offer = await honest.create(title="sentinel")
    got = await wait_until(lambda: victim.listing(offer["id"]), what="sentinel at victim")
    assert got["origin"] == honest.id


# -- hand-made signatures ------------------------------------------------------------------


def sign_with(identity: Identity, method: str, url: str, body: bytes | None = None, *,
              nonce: str | None = "n0nce-0123456789", keyid: str | None = None,
              digest: bool = True, created: datetime.datetime | None = None
              ) -> dict[str, str]:
    """RFC 9421 headers as `sign_request` makes them, with one thing changed: the nonce,
    the keyid, or no Content-Digest (``digest=False``) over a body."""
    headers: dict[str, str] = {}
    covered = ("@method", "@target-uri", "content-digest") if body and digest else \
        ("@method", "@target-uri")
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(identity)
                      ).sign(_Message(method, url, headers), key_id=keyid or identity.node_id,
                             label="aidmesh", tag="aidmesh", nonce=nonce,
                             created=created or datetime.datetime.now(datetime.UTC),
                             covered_component_ids=covered,
                             body=body if body and digest else None, include_alg=False)
    return headers


async def send(victim: FedNode, method: str, path: str, headers: dict[str, str],
               body: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    async with victim.session.request(method, victim.url + path, data=body,
                                      headers=headers) as r:
        data = await r.json(content_type=None) if r.content_type.endswith("json") else \
            await r.read()
        return r.status, data, dict(r.headers)


def refused(result: tuple[int, Any, dict[str, str]], status: int, code: str,
            case: str = "") -> None:
    got, body, headers = result
    assert got == status and isinstance(body, dict) and body["type"] == PROBLEM + code, \
        (case, got, body)
    assert_problem(got, body, status, code)
    assert headers["Content-Type"].startswith("application/problem+json")


# -- the signature edge cases, with their exact codes --------------------------------------


def header_cases(victim: FedNode, mal: MaliciousPeer) -> list[tuple[str, dict, int, str]]:
    """Refused from the headers alone: before any cryptography."""
    url = victim.url + "/federation/v1/state"
    good = sign_request(mal.identity, "GET", url, None)
    stranger = Identity.generate()
    now = int(time.time())
    return [
        ("no signature", {}, 401, "unsigned"),
        ("malformed Signature-Input", {**good, "Signature-Input": "aidmesh=((("}, 401,
         "bad-signature-input"),
        ("no aidmesh member", {**good, "Signature-Input":
                               good["Signature-Input"].replace("aidmesh=", "other=", 1)},
         401, "bad-signature-input"),
        ("keyid not a string", {**good, "Signature-Input": good["Signature-Input"].replace(
            f'keyid="{mal.id}"', "keyid=42")}, 401, "bad-signature-input"),
        ("keyid not a node id", sign_with(mal.identity, "GET", url, keyid="alice"), 403,
         "unknown-caller"),
        ("untrusted node id, signature that could never verify",
         {"Signature-Input": f'aidmesh=("@method" "@target-uri");created={now};'
                             f'keyid="{stranger.node_id}";nonce="0123456789";tag="aidmesh"',
          "Signature": "aidmesh=:AAAA:"}, 403, "untrusted-caller"),
    ]


def signature_cases(victim: FedNode, mal: MaliciousPeer) -> list[tuple[str, dict, int, str]]:
    url = victim.url + "/federation/v1/state"
    now = datetime.datetime.now(datetime.UTC)
    forged = sign_with(Identity.generate(), "GET", url, keyid=mal.id)
    return [
        ("no nonce", sign_with(mal.identity, "GET", url, nonce=None), 401, "missing-nonce"),
        ("nonce too short", sign_with(mal.identity, "GET", url, nonce="x"), 401,
         "missing-nonce"),
        # ±310, not ±301: `created` is whole seconds and a loaded machine takes time to
        # deliver, so the edge itself is not observable to the second.
        ("created 310 s ahead", sign_request(mal.identity, "GET", url, None,
                                             created=now + datetime.timedelta(seconds=310)),
         401, "stale-signature"),
        ("created 310 s ago", sign_request(mal.identity, "GET", url, None,
                                           created=now - datetime.timedelta(seconds=310)),
         401, "stale-signature"),
        ("signed by another key", forged, 401, "bad-signature"),
        ("signature bytes garbage", {**sign_request(mal.identity, "GET", url, None),
                                     "Signature": "aidmesh=:" + "A" * 86 + "==:"},
         401, "bad-signature"),
        ("signed for another path", sign_request(
            mal.identity, "GET", victim.url + "/federation/v1/notify", None), 401,
         "bad-signature"),
    ]


@pytest.mark.parametrize("group", ["headers", "signature"])
async def test_header_and_signature_edge_cases(cluster: Cluster, group: str) -> None:
    victim, honest, mal = await victim_setup(cluster)
    cases = (header_cases if group == "headers" else signature_cases)(victim, mal)
    before = observed(victim, honest, mal)
    for name, headers, status, code in cases:
        refused(await send(victim, "GET", "/federation/v1/state", headers), status, code, name)
        assert observed(victim, honest, mal) == before, name
    await sentinel_arrives(victim, honest)
    assert observed(victim, honest, mal) == before


async def test_body_edge_cases(cluster: Cluster) -> None:
    victim, honest, mal = await victim_setup(cluster)
    url = victim.url + "/federation/v1/pull"
    want = encode_want({honest.public: 0})
    other = encode_want({victim.public: 0})
    before = observed(victim, honest, mal)
    cases = [
        ("body not covered by a Content-Digest",
         sign_with(mal.identity, "POST", url, want, digest=False), want, 401, "bad-digest"),
        ("body swapped after signing", sign_request(mal.identity, "POST", url, want), other,
         401, "bad-digest"),
        ("Content-Digest header altered", {**sign_request(mal.identity, "POST", url, want),
                                           "Content-Digest": sign_request(
                                               mal.identity, "POST", url, other)[
                                               "Content-Digest"]}, other, 401,
         "bad-signature"),
        ("body over 1 MiB", sign_request(mal.identity, "POST", url, b"\x00" * (2**20 + 1)),
         b"\x00" * (2**20 + 1), 413, "body-too-large"),
    ]
    for name, headers, body, status, code in cases:
        result = await send(victim, "POST", "/federation/v1/pull", headers, body)
        refused(result, status, code, name)
        assert observed(victim, honest, mal) == before, name
    await sentinel_arrives(victim, honest)
    assert observed(victim, honest, mal) == before


async def test_replay_is_refused(cluster: Cluster) -> None:
    victim, honest, mal = await victim_setup(cluster)
    url = victim.url + "/federation/v1/pull"
    status, _, hdrs = await signed(victim.session, mal.identity, "POST", url,
                                   encode_want({honest.public: 0}))
    assert status == 200
    before = observed(victim, honest, mal)
    result = await send(victim, "POST", "/federation/v1/pull", hdrs,
                        encode_want({honest.public: 0}))
    refused(result, 401, "replayed")
    assert before["nonces"] == 1
    await sentinel_arrives(victim, honest)
    assert observed(victim, honest, mal) == before


# -- replay protection survives a restart ----------------------------------------------


async def restart_on_same_port(node: FedNode) -> None:
    """Stop the node and serve its data dir again at the same URL: a request captured
    before the restart still names the right @target-uri."""
    port = urlsplit(node.url).port
    assert port is not None
    await node.stop()
    node.app = create_app(node.config, node.identity)
    runner = web.AppRunner(node.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    node.runner = runner


async def test_replay_after_a_restart_is_refused(cluster: Cluster) -> None:
    victim, honest, mal = await victim_setup(cluster)
    url = victim.url + "/federation/v1/pull"
    body = encode_want({honest.public: 0})
    status, _, captured = await signed(victim.session, mal.identity, "POST", url, body)
    assert status == 200
    await restart_on_same_port(victim)
    await wait_until(lambda: mal.identity.public in victim.node.gossip.trusted(),
                     what="restarted victim trusts the peer")
    before = observed(victim, honest, mal)
    refused(await send(victim, "POST", "/federation/v1/pull", captured, body), 401,
            "replayed")
    assert observed(victim, honest, mal) == before
    assert before["nonces"] == 1  # kept in the database across the restart
    # Honest requests are not held back by the restart: a fresh one is served at once.
    status, _, _ = await signed(victim.session, mal.identity, "POST", url, body)
    assert status == 200
    await sentinel_arrives(victim, honest)


def test_nonces_expire_and_are_kept_per_caller(tmp_path) -> None:
    conn = connect(tmp_path / "n.sqlite3")
    migrate(conn)
    a, b = b"a" * 32, b"b" * 32
    assert nonces.remember(conn, a, "n1", 1000.0, 600)
    assert not nonces.remember(conn, a, "n1", 1599.0, 600)  # a replay within the window
    assert nonces.remember(conn, b, "n1", 1599.0, 600)  # another caller's nonce
    assert nonces.remember(conn, a, "n2", 1700.0, 600)  # the first one is now forgotten
    assert conn.execute("SELECT count(*) FROM federation_nonces WHERE caller = ?",
                        (a,)).fetchone()[0] == 1
    assert nonces.remember(conn, a, "n1", 1700.0, 600)
    conn.close()


# -- lock-out: charge after authentication ---------------------------------------------


async def open_request(node: FedNode, path: str, headers: dict[str, str], length: int,
                       first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A POST whose headers announce ``length`` body bytes, of which only ``first`` are
    sent: the connection is left open with the rest of the body never coming."""
    parts = urlsplit(node.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {length}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode() + first)
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, json.loads(body) if body else None


async def genuine_requests_served(victim: FedNode, mal: MaliciousPeer) -> None:
    """The peer's own signed requests: one after another, then 3 at once (its slots)."""
    url = victim.url + "/federation/v1/state"
    for _ in range(5):
        status, problem, _ = await signed(victim.session, mal.identity, "GET", url)
        assert status == 200, problem
    results = await asyncio.gather(*(signed(victim.session, mal.identity, "GET", url)
                                     for _ in range(3)))
    assert [r[0] for r in results] == [200, 200, 200], results


async def test_slow_bodies_under_a_peers_keyid_do_not_lock_it_out(cluster: Cluster) -> None:
    """Three connections claim the peer's keyid and never finish their body: refused
    from their headers (401), they never hold the peer's slots."""
    victim, honest, mal = await victim_setup(cluster)
    path = "/federation/v1/pull"
    junk = {**sign_request(mal.identity, "POST", victim.url + path, b"x" * 1000),
            "Signature": "aidmesh=:" + "A" * 86 + "==:"}
    before = observed(victim, honest, mal)
    slow = [await open_request(victim, path, junk, 1000, b"x" * 10) for _ in range(3)]
    try:
        for reader, _ in slow:
            status, _, problem = await read_response(reader)  # answered, body still open
            assert_problem(status, problem, 401, "bad-signature")
        await genuine_requests_served(victim, mal)
    finally:
        for _, writer in slow:
            writer.close()
    assert observed(victim, honest, mal)["store"] == before["store"]
    await sentinel_arrives(victim, honest)


async def test_a_body_that_never_ends_is_cut_off_without_holding_the_peers_slots(
        cluster: Cluster) -> None:
    """Validly signed requests (say, captured and withheld) whose bodies stall: they are
    not charged to the peer while their bodies are awaited, and end in 408."""
    victim, honest, mal = await victim_setup(cluster)
    path = "/federation/v1/pull"
    before = observed(victim, honest, mal)

    def stalled() -> Any:
        headers = sign_request(mal.identity, "POST", victim.url + path, b"x" * 1000)
        return open_request(victim, path, headers, 1000, b"x" * 10)

    victim.config.body_timeout_s = 600.0  # they stay pending whatever the machine's speed
    slow = [await stalled() for _ in range(3)]
    pending = [asyncio.ensure_future(read_response(reader)) for reader, _ in slow]
    try:
        await genuine_requests_served(victim, mal)
        assert not any(task.done() for task in pending), "stalled bodies were answered"
    finally:
        for task in pending:
            task.cancel()
        for _, writer in slow:
            writer.close()
    victim.config.body_timeout_s = 0.3
    reader, writer = await stalled()
    try:
        status, headers, problem = await read_response(reader)
    finally:
        writer.close()
    assert_problem(status, problem, 408, "body-timeout")
    assert headers["connection"] == "close"
    await wait_until(lambda: observed(victim, honest, mal)["store"] == before["store"],
                     what="victim store unchanged")
    assert nonces_of(victim, mal.identity.public) == before["nonces"] + 8  # genuine only
    await sentinel_arrives(victim, honest)


async def test_junk_signature_flood_does_not_lock_out_the_peer(cluster: Cluster) -> None:
    """Junk signatures under the peer's keyid, from the same address as the peer: the
    address's failures end in 429, the peer's genuine requests are all served."""
    victim, honest, mal = await victim_setup(cluster)
    url = victim.url + "/federation/v1/state"
    before = observed(victim, honest, mal)

    async def junk() -> tuple[int, Any, dict[str, str]]:
        headers = {**sign_request(mal.identity, "GET", url, None),
                   "Signature": "aidmesh=:" + "A" * 86 + "==:"}
        return await send(victim, "GET", "/federation/v1/state", headers)

    flood = asyncio.gather(*(junk() for _ in range(int(FAILURE_BURST) * 3)))
    await genuine_requests_served(victim, mal)
    results = await flood
    await genuine_requests_served(victim, mal)
    for status, problem, headers in results:
        if status == 429:
            assert_problem(status, problem, 429, "too-many-failures")
            assert int(headers["Retry-After"]) >= 1
        else:
            assert_problem(status, problem, 401, "bad-signature")
    assert any(r[0] == 429 for r in results)
    assert observed(victim, honest, mal)["store"] == before["store"]
    await sentinel_arrives(victim, honest)


def test_failures_are_counted_per_address_and_bounded() -> None:
    failures = Failures(cap=8)
    for _ in range(int(FAILURE_BURST)):
        assert failures.charge("192.0.2.1", 100.0) is None
    assert failures.charge("192.0.2.1", 100.0) == 1  # over budget: Retry-After 1 s
    assert failures.charge("192.0.2.2", 100.0) is None  # another address is unaffected
    assert failures.charge("192.0.2.1", 102.0) is None  # forgiven as time passes
    for i in range(100):
        failures.charge(f"198.51.100.{i}", 103.0)
    assert len(failures) == 8
    # One IPv6 host holds a /64: it counts once; an IPv4-mapped address as its IPv4.
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key(None) == "unknown"


async def test_target_uri_is_the_public_url_behind_a_proxy(cluster) -> None:
    """§14.4: a caller signs the URL it was given (here a proxy's https name); the server
    rebuilds @target-uri from its public_url, else from what it received."""
    victim, honest, mal = await victim_setup(cluster)
    outside = "https://node-b.example"
    headers = sign_with(mal.identity, "GET", outside + "/federation/v1/state",
                        nonce="proxied-0000000001")
    refused(await send(victim, "GET", "/federation/v1/state", headers), 401, "bad-signature")
    proxied = await cluster.add("proxied", start=False)
    proxied.config.public_url = outside + "/"
    await proxied.start()
    await proxied.add_peer(mal.id, mal.url)
    await wait_until(lambda: mal.identity.public in proxied.node.gossip.trusted(),
                     what="the proxied node trusts the peer")
    headers = sign_with(mal.identity, "GET", outside + "/federation/v1/state",
                        nonce="proxied-0000000002")
    status, _, _ = await send(proxied, "GET", "/federation/v1/state", headers)
    assert status == 200
    # The URL it is reached at directly is then not the one a signature may name.
    headers = sign_with(mal.identity, "GET", proxied.url + "/federation/v1/state",
                        nonce="proxied-0000000003")
    refused(await send(proxied, "GET", "/federation/v1/state", headers), 401, "bad-signature")
