"""The published test vectors (tests/vectors/*.json) agree with protocol/ and the spec."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h3
import pytest

from protocol import canonical, seal, sync
from protocol.entry import (
    SIGNING_PREFIX,
    check_payload,
    create_entry,
    decode_header,
    verify_entry,
    verify_run,
)
from protocol.errors import ProtocolError
from protocol.fork import decode_fork_proof
from protocol.identity import Identity, parse_node_id

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
DOC = ROOT / "docs" / "protocol.md"
FILES = ("entries.json", "invalid.json", "fork.json", "seal.json", "sync.json")


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def from_json(value: Any) -> Any:
    """The vectors' JSON form of msgpack values: {"$bin": hex} is a bin value."""
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def h(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


ENTRIES = load("entries.json")
ALL_VALID = ENTRIES["entries"] + ENTRIES["chain"]
BY_ID = {e["entry_id"]: e for e in ALL_VALID}
INVALID = load("invalid.json")["cases"]


# --- generator ----------------------------------------------------------------------------

def test_generator_reproduces_the_files() -> None:
    gen = _generator()
    files = gen.build()
    assert sorted(files) == sorted(FILES)
    for name, doc in files.items():
        assert gen.dump(doc) == (VECTORS / name).read_text(encoding="utf-8"), (
            f"{name} is stale: run python tests/vectors/generate.py")


def leaves(value: Any) -> Iterator[Any]:
    """Every scalar inside a JSON document."""
    if isinstance(value, dict):
        for x in value.values():
            yield from leaves(x)
    elif isinstance(value, list):
        for x in value:
            yield from leaves(x)
    else:
        yield value


def test_json_is_plain() -> None:
    """Only JSON strings, integers, arrays, objects and null: readable in any language."""
    for name in FILES:
        assert not any(isinstance(v, float) for v in leaves(load(name)))


# --- identities and valid entries ---------------------------------------------------------

@pytest.mark.parametrize("ident", ENTRIES["identities"], ids=lambda i: i["name"])
def test_identity(ident: dict[str, Any]) -> None:
    me = Identity.from_secret(bytes.fromhex(ident["secret_key"]))
    assert me.public.hex() == ident["public_key"]
    assert me.node_id == ident["node_id"] == "am" + ident["public_key"]
    assert parse_node_id(ident["node_id"]) == me.public
    assert me.seal_public().hex() == ident["seal_public"]


def test_every_kind_has_a_vector() -> None:
    from protocol.kinds import KINDS

    kinds = {e["kind"] for e in ALL_VALID}
    assert set(KINDS) <= kinds
    assert kinds - set(KINDS), "an unknown kind is covered too"


@pytest.mark.parametrize("vec", ALL_VALID, ids=lambda e: f"{e['author']}-{e['seq']}-{e['kind']}")
def test_valid_entry_reproduces_and_verifies(vec: dict[str, Any]) -> None:
    me = Identity.from_secret(bytes.fromhex(vec["secret_key"]))
    assert me.node_id == vec["node_id"]
    prev = None
    if vec["previous"] is not None:
        prev = decode_header(bytes.fromhex(BY_ID[vec["previous"]]["signed_header"]))
    content = from_json(vec["content"])
    e = create_entry(me, vec["kind"], content, previous=prev, timestamp=vec["timestamp"])
    assert e.payload.hex() == vec["payload"]
    assert e.header.payload_hash.hex() == vec["payload_hash"]
    assert e.header_bytes.hex() == vec["header_bytes"]
    assert e.signature.hex() == vec["signature"]
    assert e.raw.hex() == vec["signed_header"] == vec["header_bytes"] + vec["signature"]
    assert e.id.hex() == vec["entry_id"]
    assert e.seq == vec["seq"]
    # Verify from the bytes alone, as a receiver would.
    got = verify_entry(h(vec["signed_header"]), h(vec["payload"]))
    assert got.id.hex() == vec["entry_id"]
    assert canonical.decode(got.payload) == content
    assert verify_entry(h(vec["signed_header"])).payload is None  # payload may be absent


def test_chain_verifies_as_a_run() -> None:
    chain = ENTRIES["chain"]
    assert [e["seq"] for e in chain] == [1, 2, 3]
    items = [(h(e["signed_header"]), h(e["payload"])) for e in chain]
    out = verify_run(items)
    assert [x.id.hex() for x in out] == [e["entry_id"] for e in chain]
    # Runs of a longer log continue from an authentic previous entry.
    alice = [e for e in ENTRIES["entries"] if e["author"] == "alice"]
    first = verify_entry(h(alice[0]["signed_header"]))
    rest = [(h(e["signed_header"]), None) for e in alice[1:]]
    assert len(verify_run(rest, previous=first)) == len(alice) - 1


def test_bob_claim_carries_the_seal_vector() -> None:
    box = load("seal.json")["box"]
    claim = next(e for e in ENTRIES["entries"] if e["kind"] == "claim" and "sealed" in e["content"])
    assert claim["content"]["sealed"] == {"$bin": box}


# --- invalid cases ------------------------------------------------------------------------

def test_invalid_cases_cover_the_brief() -> None:
    codes = {c["code"] for c in INVALID}
    for code in ("bad-signature", "backlink-mismatch", "non-canonical", "seq-gap",
                 "payload-too-large", "header-too-large", "area-not-h3", "area-too-precise",
                 "trailing-bytes", "bad-header", "payload-hash-mismatch",
                 "unsupported-version", "bad-backlink", "float"):
        assert code in codes


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["name"])
def test_invalid_case(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        if case["context"] == "entry":
            verify_entry(h(case["signed_header"]), h(case["payload"]), now_ms=case["now_ms"])
        else:
            assert case["context"] == "run"
            prev = None if case["previous"] is None else decode_header(h(case["previous"]))
            items = [(h(i["signed_header"]), h(i["payload"])) for i in case["run"]]
            verify_run(items, previous=prev, now_ms=case["now_ms"])
    assert info.value.code == case["code"], str(info.value)


# --- fork proofs --------------------------------------------------------------------------

def test_fork_proof() -> None:
    v = load("fork.json")
    proof = decode_fork_proof(h(v["proof"]))
    assert proof.first.id.hex() == v["a_id"] < v["b_id"] == proof.second.id.hex()
    assert proof.author == parse_node_id(v["author"]) and proof.seq == v["seq"]
    assert sorted(e["entry_id"] for e in v["entries"]) == [v["a_id"], v["b_id"]]
    for e in v["entries"]:
        assert verify_entry(h(e["signed_header"]), h(e["payload"])).id.hex() == e["entry_id"]
    assert canonical.encode({"a": proof.first.raw, "b": proof.second.raw}).hex() == v["proof"]


@pytest.mark.parametrize("case", load("fork.json")["invalid"], ids=lambda c: c["name"])
def test_invalid_fork_proof(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_fork_proof(h(case["proof"]))
    assert info.value.code == case["code"]


# --- sealed fields ------------------------------------------------------------------------

def test_seal() -> None:
    v = load("seal.json")
    sender = Identity.from_secret(h(v["sender_secret_key"]))
    recipient = Identity.from_secret(h(v["recipient_secret_key"]))
    assert sender.seal_public().hex() == v["sender_seal_public"]
    assert recipient.seal_public().hex() == v["recipient_seal_public"]
    plaintext = h(v["plaintext"])
    assert canonical.encode(from_json(v["plaintext_content"])) == plaintext
    box = seal.seal(sender.seal_private(), recipient.seal_public(), plaintext,
                    nonce=h(v["nonce"]))
    assert box.hex() == v["box"]
    for party in (sender, recipient):
        assert seal.open_sealed(party.seal_private(), h(v["box"])) == plaintext
    m = canonical.decode(box)
    assert m == {"v": 1, "from": sender.seal_public(), "to": recipient.seal_public(),
                 "nonce": h(v["nonce"]), "ct": m["ct"]}
    # The intermediate values, recomputed independently of protocol.seal.
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    assert v["hkdf_info"] == (b"aidmesh/seal/v1".hex() + v["sender_seal_public"]
                              + v["recipient_seal_public"])
    ct = ChaCha20Poly1305(h(v["key"])).encrypt(h(v["nonce"]), plaintext, h(v["aad"]))
    assert ct == m["ct"]


@pytest.mark.parametrize("case", load("seal.json")["invalid"], ids=lambda c: c["name"])
def test_invalid_seal(case: dict[str, Any]) -> None:
    ident = next(i for i in ENTRIES["identities"] if i["name"] == case["open_with"])
    own = Identity.from_secret(h(ident["secret_key"])).seal_private()
    with pytest.raises(ProtocolError) as info:
        seal.open_sealed(own, h(case["box"]))
    assert info.value.code == case["code"]


# --- sync ---------------------------------------------------------------------------------

def test_heads_and_digest() -> None:
    v = load("sync.json")
    heads = {h(a): sync.Head(x["seq"], h(x["id"])) for a, x in v["heads"].items()}
    assert sync.encode_heads(heads).hex() == v["heads_canonical"]
    assert sync.decode_heads(h(v["heads_canonical"])) == heads
    assert sync.heads_digest(heads).hex() == v["heads_digest"]
    assert v["heads_digest_prefix"] == b"aidmesh/heads/v1\x00".hex()
    assert sync.encode_heads({}).hex() == v["empty_heads_canonical"] == "80"
    assert sync.heads_digest({}).hex() == v["empty_heads_digest"]
    # Every head is the newest entry of its log in entries.json.
    newest: dict[str, dict[str, Any]] = {}
    for e in ALL_VALID:
        key = e["node_id"][2:]
        if key not in newest or e["seq"] > newest[key]["seq"]:
            newest[key] = e
    assert {a: {"seq": e["seq"], "id": e["entry_id"]} for a, e in newest.items()} == v["heads"]


def test_frames() -> None:
    v = load("sync.json")
    want = [(h(f["signed_header"]), h(f["payload"])) for f in v["frames"]]
    stream = b"".join(sync.encode_frame(raw, p) for raw, p in want)
    assert stream.hex() == v["frame_stream"]
    assert sync.decode_frames(stream) == want
    # Fed one byte at a time, the incremental decoder yields the same frames.
    dec = sync.FrameDecoder()
    got = [f for i in range(len(stream)) for f in dec.feed(stream[i:i + 1])]
    dec.close()
    assert got == want


@pytest.mark.parametrize("case", load("sync.json")["invalid_streams"], ids=lambda c: c["name"])
def test_invalid_stream(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        sync.decode_frames(h(case["stream"]))
    assert info.value.code == case["code"]


def test_payload_request_and_answer() -> None:
    """Spec §13.4: the request's one encoding, and an answer that fills a missing payload
    by checking it against the stored header alone."""
    v = load("sync.json")
    ids = [h(i) for i in v["payload_request"]["ids"]]
    assert sync.encode_payload_request(reversed(ids)).hex() == v["payload_request"]["canonical"]
    assert sync.decode_payload_request(h(v["payload_request"]["canonical"])) == ids
    frames = sync.decode_frames(h(v["payload_answer"]["stream"]))
    assert [sha256_hex(raw) for raw, _ in frames] == v["payload_answer"]["held"]
    for raw, payload in frames:
        stored = BY_ID[sha256_hex(raw)]
        assert raw.hex() == stored["signed_header"] and payload.hex() == stored["payload"]
        check_payload(decode_header(raw).header, payload)  # P1-P5, no signature needed


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("case", load("sync.json")["invalid_payload_requests"],
                         ids=lambda c: c["name"])
def test_invalid_payload_request(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        sync.decode_payload_request(h(case["request"]))
    assert info.value.code == case["code"]


# --- state messages and wants (§14.1) -----------------------------------------------------

SYNC = load("sync.json")


def test_state_and_digest() -> None:
    v = SYNC["state"]
    heads = {h(a): sync.Head(x["seq"], h(x["id"])) for a, x in v["heads"].items()}
    forks = [h(f) for f in v["forks"]]
    state = sync.encode_state(heads, forks)
    assert state.hex() == v["canonical"]
    assert sync.decode_state(state) == (heads, forks)
    assert v["digest_prefix"] == b"aidmesh/state/v1\x00".hex()
    assert sync.state_digest(state).hex() == v["digest"]
    assert hashlib.sha256(h(v["digest_prefix"]) + state).hexdigest() == v["digest"]
    empty = SYNC["empty_state"]
    assert sync.encode_state({}, []).hex() == empty["canonical"]
    assert sync.decode_state(h(empty["canonical"])) == ({}, [])
    assert sync.state_digest(h(empty["canonical"])).hex() == empty["digest"]
    # The forked log (fork.json) is advertised at the newest seq a node serves of it,
    # the one below the fork (§8.3), with its proof beside it.
    proof = decode_fork_proof(forks[0])
    assert forks[0].hex() == load("fork.json")["proof"]
    assert heads[proof.author].seq == proof.seq - 1


def large_heads_from_recipe() -> list[tuple[str, list[Any]]]:
    """sync.json large_state's recipe, followed independently of the generator."""
    authors = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(10_001)]
    return sorted((a.hex(), [1, hashlib.sha256(a).digest()]) for a in authors)


def test_state_in_two_chunks() -> None:
    v = SYNC["large_state"]
    items = large_heads_from_recipe()
    sizes = v["chunk_sizes"]
    chunks = [dict(items[:sizes[0]]), dict(items[sizes[0]:])]
    assert [len(c) for c in chunks] == sizes == [sync.HEADS_CHUNK, 1]
    state = canonical.encode({"forks": [], "heads": chunks})
    assert (len(state), hashlib.sha256(state).hexdigest()) == (v["length"], v["sha256"])
    heads = {bytes.fromhex(a): sync.Head(x[0], x[1]) for a, x in items}
    assert sync.encode_state(heads, []) == state
    assert sync.decode_state(state) == (heads, [])
    assert sync.state_digest(state).hex() == v["digest"]


@pytest.mark.parametrize("case", SYNC["invalid_large_states"], ids=lambda c: c["name"])
def test_invalid_large_state(case: dict[str, Any]) -> None:
    items = large_heads_from_recipe()
    state = canonical.encode({"forks": [], "heads": [dict(items[1:]), dict(items[:1])]})
    assert (len(state), hashlib.sha256(state).hexdigest()) == (case["length"], case["sha256"])
    with pytest.raises(ProtocolError) as info:
        sync.decode_state(state)
    assert info.value.code == case["code"]


def test_want() -> None:
    v = SYNC["want"]
    want = {h(a): after for a, after in v["want"].items()}
    assert sync.encode_want(want).hex() == v["canonical"]
    assert sync.decode_want(h(v["canonical"])) == want
    assert sync.encode_want({}).hex() == SYNC["empty_want"]["canonical"]
    assert sync.decode_want(h(SYNC["empty_want"]["canonical"])) == {}


@pytest.mark.parametrize(("decode", "field", "case"), [
    *[(sync.decode_heads, "heads", c) for c in SYNC["invalid_heads"]],
    *[(sync.decode_state, "state", c) for c in SYNC["invalid_states"]],
    *[(sync.decode_want, "want", c) for c in SYNC["invalid_wants"]],
], ids=lambda x: x["name"] if isinstance(x, dict) else "")
def test_invalid_round_message(decode: Any, field: str, case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(h(case[field]))
    assert info.value.code == case["code"], str(info.value)


# --- every rule of the spec has a vector -----------------------------------------------------

# Sections whose rule tables a decoder applies; N1-N5 (§13.4) are what a node does, not
# checks of a message, and §14.4's numbered steps are HTTP statuses (tests/test_federation*).
RULE_SECTIONS = ("Canonical msgpack", "Validation rules", "Forks", "Sealed fields",
                 "Sync messages", "Federation HTTP (node-to-node)")


def spec_rules() -> set[str]:
    rules = set()
    for title in RULE_SECTIONS:
        rules |= set(re.findall(r"^\| ([A-Z]{1,2}[0-9]+[a-z]?) \|", _doc_section(title), re.M))
    return {r for r in rules if not r.startswith("N")}


def vector_rules(value: Any) -> Iterator[str]:
    """Every rule named by a vector ("P4/M6" names both)."""
    if isinstance(value, dict):
        if isinstance(value.get("rule"), str):
            yield from value["rule"].split("/")
        for x in value.values():
            yield from vector_rules(x)
    elif isinstance(value, list):
        for x in value:
            yield from vector_rules(x)


def test_every_rule_has_a_vector() -> None:
    rules = spec_rules()
    assert {"H11", "M3a", "W1", "ST7", "WT4", "HV4", "PR5", "O6", "F5"} <= rules
    covered = {r for name in FILES for r in vector_rules(load(name))}
    if any(r.startswith("C") for r in covered):
        covered.add("P5")  # P5 is "the C rules apply": its vectors are the C vectors
    assert sorted(rules - covered) == [], "rules of docs/protocol.md without a vector"
    assert sorted(covered - rules) == [], "vectors name rules the spec does not have"


# --- the spec quotes the same bytes -------------------------------------------------------


def test_sync_sections_quote_the_vectors() -> None:
    """Hex quoted in §13 and §14 (the payload request example) is in the vector files."""
    known = _json_strings()
    for title in ("Sync messages", "Federation HTTP (node-to-node)"):
        section = _doc_section(title)
        blocks = re.findall(r"```[a-z]*\n(.*?)```", section, re.S)
        quoted = [t for b in blocks for t in re.findall(r"\b[0-9a-f]{16,}\b", b)]
        assert not [q for q in quoted if q not in known], title
    assert load("sync.json")["payload_request"]["canonical"] in _doc_section("Sync messages")
    text = DOC.read_text(encoding="utf-8")
    for case in load("sync.json")["invalid_payload_requests"]:
        assert f"`{case['code']}`" in text

def _doc_section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"^## [0-9. ]*{re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"docs/protocol.md has no section '{title}'"
    return m.group(1)


def _json_strings() -> str:
    """Every string value of every vector file, joined (quoted hex may be a substring)."""
    return "|".join(v for name in FILES for v in leaves(load(name)) if isinstance(v, str))


def test_doc_vectors_match_the_json() -> None:
    section = _doc_section("Test vectors")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section, re.S)
    quoted = [tok for b in blocks for tok in re.findall(r"\b(?:am)?[0-9a-f]{16,}\b", b)]
    assert len(quoted) >= 15, "the spec quotes the chain and some invalid cases"
    known = _json_strings()
    stale = [q for q in quoted if q not in known]
    assert not stale, f"docs/protocol.md quotes bytes not in tests/vectors: {stale[:3]}"
    for e in ENTRIES["chain"]:
        for key in ("header_bytes", "signature", "entry_id", "payload"):
            assert e[key] in quoted, f"the spec must quote chain seq {e['seq']} {key}"


def test_doc_constants() -> None:
    """A few literal constants of the spec, checked against the code."""
    text = DOC.read_text(encoding="utf-8")
    assert SIGNING_PREFIX.hex() in text
    assert b"aidmesh/heads/v1\x00".hex() in text
    assert sync.STATE_DIGEST_PREFIX.hex() in text

    for code in {c["code"] for c in INVALID}:
        assert f"`{code}`" in text, f"error code {code} is not documented"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("vectors_generate", VECTORS / "generate.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def test_doc_generated_block_is_current() -> None:
    gen = _generator()
    text = DOC.read_text(encoding="utf-8")
    begin = "<!-- BEGIN GENERATED: python tests/vectors/generate.py --markdown -->\n"
    block = text[text.index(begin) + len(begin):text.index("<!-- END GENERATED -->")]
    assert block == gen.markdown(gen.build())


def test_areas_agree_with_h3() -> None:
    areas = [e["content"]["area"] for e in ALL_VALID if "area" in e["content"]]
    areas += [e["content"]["set"]["area"] for e in ALL_VALID
              if "set" in e["content"] and "area" in e["content"]["set"]]
    assert areas
    for a in areas:
        assert h3.is_valid_cell(a) and h3.get_resolution(a) <= 8
    for c in INVALID:
        area = c.get("content", {}).get("area")
        if c["code"] == "area-not-h3":
            # aidmesh also rejects upper-case hex, which h3 accepts
            assert area != area.lower() or not h3.is_valid_cell(area)
        elif c["code"] == "area-too-precise":
            assert h3.is_valid_cell(area) and h3.get_resolution(area) > 8
