"""Peering by invite code (spec §14.6) on real nodes: one paste, one signed handshake.

Every refusal is checked for its exact error and for leaving both nodes as they were
(entries, heads, forks and the inviter's invites). The vectors of §14.6 are checked
against the code and recomputed with hashlib, hmac and base64 alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from federation_helpers import Cluster, FedNode, signed, wait_until
from node_process import ROOT as CWD
from node_process import NodeProcess, _clean_env, aidmesh_command

from node.services import peer_invites as pi
from node.services.errors import Conflict, Forbidden, Invalid, ServiceError
from node.store.ledger import now_ms
from protocol import Identity, ProtocolError, canonical

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
HOUR_MS = 3_600_000


async def start(cluster: Cluster, count: int) -> list[FedNode]:
    """Nodes whose public_url is the loopback URL they serve on."""
    nodes = await cluster.start(count)
    for n in nodes:
        n.config.public_url = n.url
    return nodes


async def invite(node: FedNode, *, hours: int = 72, now: int | None = None) -> pi.PeerInvite:
    """A code made the way the web page and the CLI make it (the same service call)."""
    ledger = node.node.store.ledger
    return await node.node.store.write(lambda c: pi.create(
        c, ledger, node.config, now if now is not None else now_ms(), hours))


def state(*nodes: FedNode) -> list[Any]:
    """What a refusal must leave alone: every log, and the invites and who used them."""
    return [(n.snapshot(), n.query("SELECT id, used, used_by FROM peer_invites ORDER BY id"))
            for n in nodes]


async def refused(node: FedNode, code: str, kind: type[ServiceError], error: str,
                  reason: str | None = None) -> ServiceError:
    with pytest.raises(kind) as info:
        await node.node.peering.join(code)
    assert type(info.value) is kind and info.value.code == error, info.value.detail
    if reason is not None:
        assert info.value.extra.get("reason") == reason, info.value.extra
    return info.value


async def trusts(node: FedNode, other: FedNode) -> bool:
    return other.id in await node.peers()


# -- the happy path ----------------------------------------------------------------------------


async def test_one_paste_peers_both_ways_and_gossip_flows(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    made = await invite(a)
    assert made.code.startswith("ami") and made.link == f"{a.url}/peer-invite?code={made.code}"
    assert [i["id"] for i in await a.node.store.read(
        lambda c: pi.open_invites(c, now_ms()))] == [made.id]
    peer = await b.node.peering.join(made.code)
    assert peer == {"id": a.id, "name": a.config.name, "url": a.url}
    assert await trusts(a, b) and await trusts(b, a)
    assert (await a.peers())[b.id]["url"] == b.url
    assert await a.node.store.read(lambda c: pi.open_invites(c, now_ms())) == []
    offer_a, offer_b = await a.create(title="bread from A"), await b.create(title="soup")
    await wait_until(lambda: b.has_offer(offer_a["id"]), what="A's offer at B")
    await wait_until(lambda: a.has_offer(offer_b["id"]), what="B's offer at A")


async def test_the_link_and_a_code_wrapped_in_groups_work_too(cluster: Cluster) -> None:
    a, b, c = await start(cluster, 3)
    assert (await b.node.peering.join((await invite(a)).link))["id"] == a.id
    code = (await invite(a)).code.upper()
    wrapped = " ".join(code[i:i + 5] for i in range(0, len(code), 5)).replace(" ", "-", 3)
    assert (await c.node.peering.join(f"  {wrapped}\n"))["id"] == a.id
    assert await trusts(a, c) and await trusts(c, a)


async def test_a_joiner_the_inviter_cannot_reach_is_still_trusted(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    dead = await cluster.add("dead")
    dead_url = dead.url
    await dead.stop()  # nothing listens there now
    b.config.public_url = dead_url  # b announces a URL a cannot reach
    await b.node.peering.join((await invite(a)).code)
    assert (await a.peers())[b.id]["url"] == dead_url
    await wait_until(lambda: _errored(a, b), what="a's gossip to b to fail and back off")
    offer = await a.create()
    await wait_until(lambda: b.has_offer(offer["id"]), what="b to pull from a all the same")


async def _errored(a: FedNode, b: FedNode) -> bool:
    return bool((await a.peers())[b.id]["last_error"])


async def test_joining_a_peer_again_says_already_peered(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    await cluster.peer(a, b)  # the old way, both sides by hand, still works
    before = state(a, b)[:1]
    error = await refused(b, (await invite(a)).code, Conflict, "already-peered")
    assert error.extra["id"] == a.id and error.extra["url"] == a.url
    assert [s for s, _ in state(a, b)][:1] == [s for s, _ in before]


# -- refusals: nothing changes on either side ----------------------------------------------------


async def test_typos_and_junk_are_caught_before_anything_is_sent(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    code = (await invite(a)).code
    before = state(a, b)
    typo = code[:40] + ("a" if code[40] != "a" else "b") + code[41:]
    for text, reason in (("hello", "bad-invite"), (typo, "invite-checksum"),  # cut: either
                         (code[:-8], None), (a.id, "bad-invite"),
                         (f"{a.url}/peer-invite", "bad-invite")):
        error = await refused(b, text, Invalid, "invite-malformed", reason)
        assert error.field == "code"
    assert state(a, b) == before


async def test_a_tampered_code_with_a_fixed_checksum_is_refused_by_the_inviter(
        cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    real = pi.decode_code((await invite(a)).code)
    before = state(a, b)
    forged = pi.encode_code(pi.Invite(real.node, real.url, bytes(16), real.expires))
    await refused(b, forged, Forbidden, "invite-refused", "invite-unknown")
    assert state(a, b) == before


async def test_a_used_code_is_refused_for_another_node(cluster: Cluster) -> None:
    a, b, c = await start(cluster, 3)
    code = (await invite(a)).code
    await b.node.peering.join(code)
    before = state(a, c)
    error = await refused(c, code, Conflict, "invite-refused", "invite-used")
    assert "already used" in error.detail
    assert state(a, c) == before
    assert not await trusts(a, c) and not await trusts(c, a)


async def test_expired_codes_are_refused(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    just = await invite(a, hours=1, now=now_ms() - HOUR_MS - 2000)  # the inviter decides
    long_ago = await invite(a, hours=1, now=now_ms() - 5 * HOUR_MS)  # refused locally
    before = state(a, b)
    await refused(b, just.code, Forbidden, "invite-refused", "invite-expired")
    await refused(b, long_ago.code, Forbidden, "invite-refused", "invite-expired")
    assert state(a, b) == before


async def test_a_nodes_own_code_is_refused(cluster: Cluster) -> None:
    (a,) = await start(cluster, 1)
    made = await invite(a)
    before = state(a)
    await refused(a, made.code, Invalid, "invite-own")
    assert state(a) == before
    assert len(await a.node.store.read(lambda c: pi.open_invites(c, now_ms()))) == 1


async def test_no_public_url_no_code_and_no_join(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    code = (await invite(a)).code
    a.config.public_url = ""
    with pytest.raises(Conflict) as info:
        await invite(a)
    assert info.value.code == "no-public-url" and "public_url" in info.value.detail
    a.config.public_url = a.url
    b.config.public_url = ""
    before = state(a, b)
    await refused(b, code, Conflict, "no-public-url")
    assert state(a, b) == before


async def test_an_unreachable_inviter_changes_nothing(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    code = (await invite(a)).code
    await a.stop()
    before = state(b)
    error = await refused(b, code, Conflict, "peer-unreachable")
    assert a.config.public_url in error.detail
    assert state(b) == before


async def test_the_inviters_url_is_called_only_at_an_allowed_address(cluster: Cluster) -> None:
    a, b = await start(cluster, 2)
    code = (await invite(a)).code
    b.config.outbound_deny = "127.0.0.0/8"  # b's admin refuses calls into this range
    before = state(a, b)
    error = await refused(b, code, Conflict, "peer-unreachable")
    assert "refused address" in error.detail
    assert state(a, b) == before


async def test_concurrent_use_of_one_code_makes_one_peer(cluster: Cluster) -> None:
    a, b, c = await start(cluster, 3)
    code = (await invite(a)).code
    results = await asyncio.gather(b.node.peering.join(code), c.node.peering.join(code),
                                   return_exceptions=True)
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, ServiceError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0].code == "invite-refused" and losers[0].extra["reason"] == "invite-used"
    assert len(await a.peers()) == 1
    loser = c if isinstance(results[1], ServiceError) else b
    assert await loser.peers() == {}


# -- the endpoint, by hand: proof, replay, limits ----------------------------------------------


def join_body(made: pi.PeerInvite, joiner: Identity, url: str, *,
              key: bytes | None = None) -> bytes:
    inv = pi.decode_code(made.code)
    nonce = bytes(16)
    return pi.encode_join_request(pi.JoinRequest(inv.id, nonce, pi.proof(
        key or inv.key, inv.node, joiner.public, nonce, url), url))


async def test_a_wrong_proof_is_refused(cluster: Cluster) -> None:
    (a,) = await start(cluster, 1)
    made = await invite(a)
    stranger = Identity.generate()
    before = state(a)
    status, body, _ = await signed(a.session, stranger, "POST", f"{a.url}/federation/v1/join",
                                   join_body(made, stranger, "http://127.0.0.1:9",
                                             key=bytes(32)))
    assert (status, body["type"]) == (403, "urn:aidmesh:problem:bad-invite-proof")
    assert state(a) == before


async def test_a_joiner_url_that_cannot_be_called_is_refused(cluster: Cluster) -> None:
    (a,) = await start(cluster, 1)
    made = await invite(a)
    stranger = Identity.generate()
    before = state(a)
    for url in ("http://0.0.0.0:8080", "http://127.0.0.1:9/api/v1", "https://me:pw@x.org"):
        status, body, _ = await signed(a.session, stranger, "POST",
                                       f"{a.url}/federation/v1/join",
                                       join_body(made, stranger, url))
        assert (status, body["type"]) == (400, "urn:aidmesh:problem:bad-join-request"), url
    assert state(a) == before


async def test_a_replayed_handshake_is_refused(cluster: Cluster) -> None:
    (a,) = await start(cluster, 1)
    made = await invite(a)
    stranger = Identity.generate()
    url, body = f"{a.url}/federation/v1/join", join_body(made, stranger, "http://127.0.0.1:9")
    status, answer, sent = await signed(a.session, stranger, "POST", url, body)
    assert status == 200
    assert pi.decode_answer(answer)["added"] is True
    before = state(a)
    status, problem, _ = await signed(a.session, stranger, "POST", url, body, presigned=sent)
    assert (status, problem["type"]) == (401, "urn:aidmesh:problem:replayed")
    # Signed afresh by the node that used it (its answer was lost): answered, not re-added.
    status, answer, _ = await signed(a.session, stranger, "POST", url, body)
    assert status == 200 and pi.decode_answer(answer)["added"] is False
    assert state(a) == before


async def test_many_concurrent_strangers_one_code_one_peer(cluster: Cluster) -> None:
    (a,) = await start(cluster, 1)
    made = await invite(a)
    strangers = [Identity.generate() for _ in range(6)]
    url = f"{a.url}/federation/v1/join"
    results = await asyncio.gather(*(signed(a.session, s, "POST", url, join_body(
        made, s, f"http://127.0.0.1:{9 + i}")) for i, s in enumerate(strangers)))
    assert sorted(r[0] for r in results) == [200] + [409] * 5
    assert len(await a.peers()) == 1


async def test_join_requests_are_limited_per_address(cluster: Cluster) -> None:
    (a,) = await start(cluster, 1)
    before = state(a)
    url = f"{a.url}/federation/v1/join"
    statuses = []
    for _ in range(11):
        async with a.session.post(url, data=b"\x80") as r:
            statuses.append(r.status)
            last = (r.headers.get("Retry-After"), await r.json(content_type=None))
    assert statuses == [401] * 10 + [429]
    assert last[0] and last[1]["type"] == "urn:aidmesh:problem:rate-limited"
    assert state(a) == before


async def test_other_federation_endpoints_stay_closed_to_strangers(cluster: Cluster) -> None:
    (a,) = await start(cluster, 1)
    status, body, _ = await signed(a.session, Identity.generate(), "GET",
                                   f"{a.url}/federation/v1/state")
    assert (status, body["type"]) == (403, "urn:aidmesh:problem:untrusted-caller")


# -- the CLI, beside running nodes -------------------------------------------------------------


async def aidmesh(home: Path, *args: str) -> tuple[int, str, str]:
    """`aidmesh --home HOME ARGS` in its own process: exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *aidmesh_command(), "--home", str(home), *args, cwd=CWD, env=_clean_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def has_log(node: NodeProcess, author: str) -> bool:
    status, body = await node.api("GET", "/api/v1/logs")
    return status == 200 and any(log["author"] == author for log in body["logs"])


async def test_cli_invite_and_join_while_both_nodes_run(tmp_path: Path) -> None:
    # A minute between rounds: logs arriving within seconds prove each running node
    # noticed the commits (the inviter's own, the CLI's on the joiner) and synced at once.
    a = await NodeProcess.start(tmp_path / "a", name="Northside", gossip_interval_s=60)
    b = await NodeProcess.start(tmp_path / "b", name="Southside", gossip_interval_s=60)
    try:
        code, out, err = await aidmesh(a.home, "peer", "invite", "--hours", "2")
        assert code == 0, err
        lines = out.strip().splitlines()
        invite_code = lines[-1]
        assert f"link: {a.url}/peer-invite?code={invite_code}" in lines
        assert invite_code.startswith("ami") and "until" in lines[0]
        typo = invite_code[:30] + ("a" if invite_code[30] != "a" else "b") + invite_code[31:]
        code, _, err = await aidmesh(b.home, "peer", "join", typo)
        assert code == 1 and err.startswith("aidmesh: error:") and "check out" in err
        assert "Traceback" not in err
        code, out, err = await aidmesh(b.home, "peer", "join", f"{a.url}/peer-invite?code="
                                       f"{invite_code}")
        assert code == 0, err
        assert out.startswith(f"now peering with Northside {a.node_id} at {a.url}")
        await wait_until(lambda: has_log(b, a.node_id), what="b to pull a's log")
        await wait_until(lambda: has_log(a, b.node_id), what="a to pull b's log")
        offer = json.loads((await a.cli("offer", "add", "--title", "Rye", "--category",
                                        "food/bread", "--json")).strip())
        await wait_until(lambda: _has_offer(b, offer["id"]), what="a's CLI offer at b")
        code, _, err = await aidmesh(b.home, "peer", "join", invite_code)
        assert code == 1 and "already peers with Northside" in err
        code, out, _ = await aidmesh(a.home, "peer", "invites", "--json")
        assert (code, out) == (0, "")
    finally:
        await a.stop()
        await b.stop()


async def _has_offer(node: NodeProcess, entry_id: str) -> bool:
    return (await node.api("GET", f"/api/v1/offers/{entry_id}"))[0] == 200


async def test_cli_refuses_a_code_without_public_url(make_home) -> None:
    home = make_home("lone")
    code, _, err = await aidmesh(home.path, "peer", "invite")
    assert code == 1 and "set public_url" in err and "Traceback" not in err


# -- the vectors of §14.6 ----------------------------------------------------------------------


def _vectors() -> dict[str, Any]:
    return json.loads((VECTORS / "invites.json").read_text(encoding="utf-8"))


def test_generator_reproduces_the_vectors() -> None:
    spec = importlib.util.spec_from_file_location("gen_invites",
                                                  VECTORS / "generate_invites.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.dump(gen.build()) == (VECTORS / "invites.json").read_text(encoding="utf-8"), \
        "invites.json is stale: run python tests/vectors/generate_invites.py"


def test_vectors_recomputed_independently() -> None:
    v = _vectors()
    code, req = v["code"], v["join_request"]
    secret, record = bytes.fromhex(code["secret"]), bytes.fromhex(code["record"])
    inviter = Identity.from_secret(bytes.fromhex(v["inviter"]["secret_key"]))
    joiner = Identity.from_secret(bytes.fromhex(v["joiner"]["secret_key"]))
    assert record == canonical.encode([1, inviter.public, code["url"], secret,
                                       code["expires"]])
    check = hashlib.sha256(b"aidmesh/invite/v1\x00" + record).digest()[:4]
    assert check.hex() == code["checksum"]
    text = "ami" + base64.b32encode(record + check).decode().rstrip("=").lower()
    assert text == code["text"] and code["link"].endswith("/peer-invite?code=" + text)
    assert hashlib.sha256(b"aidmesh/invite/id/v1\x00" + secret).digest()[:16].hex() \
        == code["invite_id"]
    key = hashlib.sha256(b"aidmesh/invite/key/v1\x00" + secret).digest()
    assert key.hex() == code["join_key"]
    message = (b"aidmesh/join/v1\x00" + inviter.public + joiner.public
               + bytes.fromhex(req["nonce"]) + req["url"].encode())
    assert message.hex() == req["proof_message"]
    proof = hmac.new(key, message, hashlib.sha256).digest()
    assert proof.hex() == req["proof"]
    assert canonical.encode({"invite": bytes.fromhex(code["invite_id"]),
                             "nonce": bytes.fromhex(req["nonce"]), "proof": proof,
                             "url": req["url"]}).hex() == req["canonical"]
    # ... and the code under test agrees.
    assert pi.decode_code(text) == pi.Invite(inviter.public, code["url"], secret,
                                             code["expires"])
    got = pi.decode_join_request(bytes.fromhex(req["canonical"]))
    assert (got.proof, got.url) == (proof, req["url"])
    assert pi.decode_answer(bytes.fromhex(v["join_answer"]["canonical"]))["added"] is True


@pytest.mark.parametrize("case", _vectors()["invalid_codes"], ids=lambda c: c["name"])
def test_invalid_code(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        pi.decode_code(case["text"])
    assert info.value.code == case["code"], str(info.value)


@pytest.mark.parametrize("case", _vectors()["invalid_join_requests"], ids=lambda c: c["name"])
def test_invalid_join_request(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        pi.decode_join_request(bytes.fromhex(case["request"]))
    assert info.value.code == case["code"], str(info.value)


def _section() -> str:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    return text[text.index("### 14.6"):text.index("## 15.")]


def test_every_step_of_the_decoding_tables_has_a_vector() -> None:
    tables = re.findall(r"\| Step \| Check \| Code \|\n\|---\|---\|---\|\n((?:\|.*\n)+)",
                        _section())
    assert len(tables) == 2, "§14.6 has the code table and the join request table"
    v = _vectors()
    for table, cases in zip(tables, (v["invalid_codes"], v["invalid_join_requests"]),
                            strict=True):
        steps = {int(n) for n in re.findall(r"^\| (\d+) \|", table, re.M)}
        assert steps == {c["step"] for c in cases}
        for case in cases:
            row = re.search(rf"^\| {case['step']} \|.*$", table, re.M)
            assert row and f"`{case['code']}`" in row.group(0) or case["code"] in (
                "non-canonical",), case["name"]


def test_the_spec_quotes_the_vectors() -> None:
    section = _section()
    strings = json.dumps(_vectors())
    quoted = re.findall(r"`([0-9a-f]{8,})`", section) + re.findall(r"\bami[a-z2-7]{40,}",
                                                                    section)
    assert len(quoted) >= 9
    assert [q for q in quoted if q not in strings] == []
    assert _vectors()["code"]["text"] in section
