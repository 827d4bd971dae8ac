"""Regenerate the aidmesh protocol test vectors (deterministic).

Run from anywhere:  python tests/vectors/generate.py            (rewrites the JSON files)
                    python tests/vectors/generate.py --markdown  (prints the doc excerpt)

Everything is derived from fixed secret keys, fixed timestamps and a fixed seal nonce;
Ed25519 signatures are deterministic, so two runs produce identical files. The JSON uses
only strings, integers, arrays, objects and null; bytes are lowercase hex strings.

Payload contents ("content") are written in a JSON form of msgpack values: strings,
integers, arrays and maps stand for themselves, and ``{"$bin": "<hex>"}`` stands for a
msgpack bin value. ``tests/test_vectors.py`` checks the files against ``protocol/``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey  # noqa: E402
from cryptography.hazmat.primitives.hashes import SHA256  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402

from protocol import canonical, seal, sync  # noqa: E402
from protocol.entry import SIGNING_PREFIX, Entry, create_entry  # noqa: E402
from protocol.fork import make_fork_proof  # noqa: E402
from protocol.identity import Identity  # noqa: E402

# --- fixed inputs -------------------------------------------------------------------------

SECRETS = {
    "alice": bytes(range(32)),
    "bob": bytes([7] * 32),
    "carol": bytes(range(32, 64)),
}
T0 = 1_795_000_000_000  # 2026-11-18T09:46:40Z, milliseconds since the Unix epoch
MINUTE = 60_000
SEAL_NONCE = bytes(range(12))
AREA_RES8 = "881f1d4895fffff"  # Berlin Mitte, resolution 8 (h3.latlng_to_cell(52.52, 13.405, 8))
AREA_RES6 = "861f1d48fffffff"  # the resolution-6 parent of the same place
AREA_RES9 = "891f1d48947ffff"  # resolution 9: too precise for a public entry
# mode 1, resolution 1, base cell 4 (a pentagon), digit 1 = 1 (the deleted K axis), rest 7
PENTAGON_K_CELL = f"{(1 << 59) | (1 << 52) | (4 << 45) | (1 << 42) | ((1 << 42) - 1):015x}"
NOW_MS = T0 + 60 * MINUTE  # "now" for the future-timestamp case

IDS = {name: Identity.from_secret(secret) for name, secret in SECRETS.items()}


# --- JSON forms ---------------------------------------------------------------------------

def to_json(value: Any) -> Any:
    """A msgpack value in the JSON form described in the module docstring."""
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def sign_raw(ident: Identity, header_bytes: bytes) -> bytes:
    """header_bytes || Ed25519(SIGNING_PREFIX || header_bytes), for hand-made headers."""
    return header_bytes + ident.sign(SIGNING_PREFIX + header_bytes)


def with_field(entry: Entry, **fields: Any) -> dict[str, Any]:
    """The header map of ``entry`` with some fields replaced (to break one H rule)."""
    return {**entry.header.to_map(), **fields}


def header_map(ident: Identity, *, seq: int, ts: int, kind: str, payload: bytes,
               back: bytes | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"v": 1, "author": ident.public, "seq": seq, "ts": ts, "kind": kind,
                         "phash": hashlib.sha256(payload).digest(), "psize": len(payload)}
    if back is not None:
        m["back"] = back
    return m


# --- valid entries ------------------------------------------------------------------------

class Log:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ident = IDS[name]
        self.entries: list[Entry] = []

    @property
    def head(self) -> Entry | None:
        return self.entries[-1] if self.entries else None


def entry_vector(log: Log, label: str, kind: str, content: Any, ts: int) -> dict[str, Any]:
    prev = log.head
    e = create_entry(log.ident, kind, content, previous=prev, timestamp=ts)
    log.entries.append(e)
    return {
        "label": label,
        "author": log.name,
        "secret_key": log.ident.secret.hex(),
        "node_id": log.ident.node_id,
        "kind": kind,
        "seq": e.seq,
        "timestamp": e.header.timestamp,
        "previous": None if prev is None else prev.id.hex(),
        "content": to_json(content),
        "payload": e.payload.hex(),
        "payload_hash": e.header.payload_hash.hex(),
        "header_bytes": e.header_bytes.hex(),
        "signature": e.signature.hex(),
        "signed_header": e.raw.hex(),
        "entry_id": e.id.hex(),
    }


def seal_parts() -> dict[str, Any]:
    """The sealed-field vector: bob seals contact details to alice."""
    sender, recipient = IDS["bob"], IDS["alice"]
    plaintext_value = {"contact": "Ask for Sam at the side door", "phone": "+49 30 5555 0100"}
    plaintext = canonical.encode(plaintext_value)
    box = seal.seal(sender.seal_private(), recipient.seal_public(), plaintext, nonce=SEAL_NONCE)
    shared = sender.seal_private().exchange(
        X25519PublicKey.from_public_bytes(recipient.seal_public()))
    key = HKDF(algorithm=SHA256(), length=32, salt=None,
               info=seal.SEAL_INFO + sender.seal_public() + recipient.seal_public()).derive(shared)
    return {
        "sender": "bob",
        "sender_secret_key": sender.secret.hex(),
        "sender_seal_private": seal_private_hex(sender),
        "sender_seal_public": sender.seal_public().hex(),
        "recipient": "alice",
        "recipient_secret_key": recipient.secret.hex(),
        "recipient_seal_private": seal_private_hex(recipient),
        "recipient_seal_public": recipient.seal_public().hex(),
        "shared_secret": shared.hex(),
        "hkdf_info": (seal.SEAL_INFO + sender.seal_public() + recipient.seal_public()).hex(),
        "key": key.hex(),
        "aad": seal.SEAL_AAD.hex(),
        "nonce": SEAL_NONCE.hex(),
        "plaintext_content": to_json(plaintext_value),
        "plaintext": plaintext.hex(),
        "box": box.hex(),
    }, box


def seal_private_hex(ident: Identity) -> str:
    return ident.seal_private().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption()).hex()


def build_entries() -> tuple[dict[str, Any], dict[str, Log], dict[str, Any], bytes]:
    alice, bob, carol = Log("alice"), Log("bob"), Log("carol")
    seal_vec, box = seal_parts()
    t = iter(range(T0, T0 + 1000 * MINUTE, MINUTE))
    out: list[dict[str, Any]] = []

    out.append(entry_vector(alice, "alice profile", "profile", {
        "name": "Mitte Food Share",
        "about": "Neighbourhood group, Saturdays at the community centre.",
        "area": AREA_RES6,
        "languages": ["de", "en"],
        "seal_key": IDS["alice"].seal_public(),
    }, next(t)))
    out.append(entry_vector(alice, "offer with every optional field", "offer", {
        "title": "20 loaves of bread",
        "description": "Yesterday's sourdough from the bakery on the corner.",
        "action": "transfer",
        "category": "food/bread",
        "quantity": {"value": "20", "unit": "loaf"},
        "area": AREA_RES8,
        "available_from": T0,
        "available_until": T0 + 8 * 3600 * 1000,
        "tags": ["vegan", "pickup"],
        "language": "en",
    }, next(t)))
    offer_id = alice.head.id
    out.append(entry_vector(alice, "need with urgency and radius", "need", {
        "title": "Baby formula",
        "action": "transfer",
        "category": "food/baby",
        "quantity": {"value": "2.5", "unit": "kg"},
        "urgency": "high",
        "radius_km": 5,
        "area": AREA_RES8,
        "language": "de",
    }, next(t)))
    need_id = alice.head.id
    out.append(entry_vector(alice, "update of the offer", "update", {
        "target": offer_id,
        "set": {"quantity": {"value": "12", "unit": "loaf"},
                "available_until": T0 + 6 * 3600 * 1000},
    }, next(t)))

    out.append(entry_vector(bob, "bob profile", "profile", {
        "name": "Kreuzberg Mutual Aid",
        "seal_key": IDS["bob"].seal_public(),
    }, next(t)))
    out.append(entry_vector(bob, "claim with a sealed field", "claim", {
        "target": offer_id,
        "target_author": IDS["alice"].public,
        "quantity": {"value": "5", "unit": "loaf"},
        "message": "We can pick up at 17:00.",
        "sealed": box,
    }, next(t)))
    claim1 = bob.head.id
    out.append(entry_vector(bob, "second claim", "claim", {
        "target": offer_id,
        "target_author": IDS["alice"].public,
    }, next(t)))
    claim2 = bob.head.id

    out.append(entry_vector(alice, "trust a peer", "trust", {
        "peer": IDS["bob"].public,
        "url": "https://kreuzberg.example.org/aidmesh",
    }, next(t)))
    out.append(entry_vector(alice, "accept the first claim", "accept", {
        "target": offer_id,
        "claim": claim1,
        "claim_author": IDS["bob"].public,
        "quantity": {"value": "5", "unit": "loaf"},
    }, next(t)))
    out.append(entry_vector(alice, "decline the second claim", "decline", {
        "target": offer_id,
        "claim": claim2,
        "claim_author": IDS["bob"].public,
        "reason": "All promised already.",
    }, next(t)))
    out.append(entry_vector(alice, "fulfil the first claim", "fulfil", {
        "target": offer_id,
        "claim": claim1,
        "claim_author": IDS["bob"].public,
        "quantity": {"value": "5", "unit": "loaf"},
    }, next(t)))
    out.append(entry_vector(alice, "withdraw the need", "withdraw", {
        "target": need_id,
        "reason": "Found some.",
    }, next(t)))
    out.append(entry_vector(alice, "redact the need's payload", "redact", {
        "target": need_id,
    }, next(t)))
    out.append(entry_vector(alice, "untrust the peer", "untrust", {
        "peer": IDS["bob"].public,
    }, next(t)))
    out.append(entry_vector(alice, "unknown kind (verifies, ignored by state)", "x-poll", {
        "question": "Next market day?",
        "options": ["sat", "sun"],
        "weights": [2, 1],
    }, next(t)))

    chain = [
        entry_vector(carol, "chain 1", "profile", {"name": "Carol"}, T0),
        entry_vector(carol, "chain 2", "offer", {
            "title": "Ladder", "action": "lend", "category": "tools"}, T0 + MINUTE),
        entry_vector(carol, "chain 3", "withdraw", {"target": carol.head.id}, T0 + 2 * MINUTE),
    ]

    idents = [{
        "name": name,
        "secret_key": ident.secret.hex(),
        "public_key": ident.public.hex(),
        "node_id": ident.node_id,
        "seal_private": seal_private_hex(ident),
        "seal_public": ident.seal_public().hex(),
    } for name, ident in IDS.items()]

    doc = {
        "description": "Valid aidmesh v1 entries. Reproduce each from secret_key, kind, "
                       "content, timestamp and previous (the entry id of the entry before "
                       "it in the same log, listed in this file, or null at seq 1). Content "
                       "uses {\"$bin\": hex} for msgpack bin values.",
        "signing_prefix": SIGNING_PREFIX.hex(),
        "identities": idents,
        "entries": out,
        "chain": chain,
    }
    return doc, {"alice": alice, "bob": bob, "carol": carol}, seal_vec, box


# --- invalid cases ------------------------------------------------------------------------

def case(name: str, rule: str, code: str, context: str, items: list[tuple[bytes, bytes | None]],
         *, previous: Entry | None = None, now_ms: int | None = None,
         note: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "rule": rule, "code": code, "context": context}
    if note:
        c["note"] = note
    if context == "entry":
        (raw, payload), = items
        c["signed_header"] = raw.hex()
        c["payload"] = None if payload is None else payload.hex()
    else:
        c["run"] = [{"signed_header": raw.hex(), "payload": None if p is None else p.hex()}
                    for raw, p in items]
        c["previous"] = None if previous is None else previous.raw.hex()
    c["now_ms"] = now_ms
    return c


def build_invalid(logs: dict[str, Log]) -> dict[str, Any]:
    carol = logs["carol"]
    ident = carol.ident
    c1, c2, c3 = carol.entries
    good_payload = canonical.encode({"title": "Ladder", "action": "lend", "category": "tools"})
    cases = []

    def signed(m: dict[str, Any]) -> bytes:
        return sign_raw(ident, canonical.encode(m))

    def offer_with(content_bytes: bytes, ts: int = T0 + MINUTE) -> tuple[bytes, bytes]:
        m = header_map(ident, seq=2, ts=ts, kind="offer", payload=content_bytes, back=c1.id)
        return signed(m), content_bytes

    # --- structure of the signed header (H rules) ---
    big = header_map(ident, seq=1, ts=T0, kind="x-big", payload=b"\xc0")
    big["pad"] = bytes(500)
    cases.append(case("oversize signed header (577+ bytes)", "H1", "header-too-large", "entry",
                      [(signed(big), None)]))
    cases.append(case("signed header no longer than a signature", "H2", "malformed", "entry",
                      [(bytes(64), None)]))
    hb = c1.header_bytes
    cases.append(case("trailing byte after the header map (signed)", "H3/M4", "trailing-bytes",
                      "entry", [(sign_raw(ident, hb + b"\xc0"), c1.payload)]))
    noncanon_seq = hb.replace(b"\xa3seq\x01", b"\xa3seq\xcc\x01")
    assert noncanon_seq != hb
    cases.append(case("non-canonical header: seq 1 as uint8 (cc 01)", "H3/M8", "non-canonical",
                      "entry", [(sign_raw(ident, noncanon_seq), c1.payload)]))
    m = c1.header.to_map()
    unsorted = msgpack.packb(dict(sorted(m.items(), reverse=True)), use_bin_type=True)
    cases.append(case("non-canonical header: keys not sorted", "H3/M8", "non-canonical", "entry",
                      [(sign_raw(ident, unsorted), c1.payload)]))
    cases.append(case("header is an array, not a map", "H4", "bad-header", "entry",
                      [(sign_raw(ident, canonical.encode([1, 2, 3])), None)]))
    v2 = c1.header.to_map()
    v2["v"] = 2
    cases.append(case("unsupported version 2", "H5", "unsupported-version", "entry",
                      [(signed(v2), c1.payload)]))
    nots = c1.header.to_map()
    del nots["ts"]
    cases.append(case("missing header field ts", "H6", "bad-header", "entry",
                      [(signed(nots), c1.payload)]))
    extra = c1.header.to_map()
    extra["x"] = 1
    cases.append(case("unknown header field x", "H7", "bad-header", "entry",
                      [(signed(extra), c1.payload)]))
    seq0 = c1.header.to_map()
    seq0["seq"] = 0
    cases.append(case("seq 0", "H8", "bad-header", "entry", [(signed(seq0), c1.payload)]))
    back1 = c1.header.to_map()
    back1["back"] = bytes(32)
    cases.append(case("seq 1 with a backlink", "H9", "bad-backlink", "entry",
                      [(signed(back1), c1.payload)]))
    noback = c2.header.to_map()
    del noback["back"]
    cases.append(case("missing backlink at seq 2", "H9", "bad-backlink", "entry",
                      [(signed(noback), c2.payload)]))
    badkind = c1.header.to_map()
    badkind["kind"] = "Offer"
    cases.append(case("kind with an upper-case letter", "H10", "bad-kind", "entry",
                      [(signed(badkind), c1.payload)]))
    huge = header_map(ident, seq=1, ts=T0, kind="x-blob", payload=b"")
    huge["psize"] = 65537
    cases.append(case("header declares a 65537-byte payload", "H12", "payload-too-large",
                      "entry", [(signed(huge), None)]))
    cases.append(case("psize 2^32: in the range of H11, over the limit of H12", "H12",
                      "payload-too-large", "entry", [(signed(with_field(c1, psize=2**32)),
                                                      None)]))
    for label, value in (("2^32 + 1", 2**32 + 1), ("-1", -1), ("a string", "12")):
        cases.append(case(f"psize {label}", "H11", "bad-header", "entry",
                          [(signed(with_field(c1, psize=value)), None)]))
    shortauthor = c1.header.to_map()
    shortauthor["author"] = ident.public[:31]
    cases.append(case("author is 31 bytes", "H13", "bad-header", "entry",
                      [(sign_raw(ident, canonical.encode(shortauthor)), c1.payload)]))
    cases.append(case("backlink is 31 bytes", "H14", "bad-header", "entry",
                      [(signed(with_field(c2, back=c1.id[:31])), c2.payload)]))
    cases.append(case("backlink is hex text, not bin", "H14", "bad-header", "entry",
                      [(signed(with_field(c2, back=c1.id.hex())), c2.payload)]))
    for label, value in (("-1", -1), ("2^53", 2**53)):
        cases.append(case(f"timestamp {label}", "H15", "bad-header", "entry",
                          [(signed(with_field(c1, ts=value)), None)]))
    cases.append(case("payload hash is 31 bytes", "H16", "bad-header", "entry",
                      [(signed(with_field(c1, phash=c1.header.payload_hash[:31])), None)]))

    # --- signature and time ---
    bad_sig = bytearray(c1.raw)
    bad_sig[-1] ^= 0x01
    cases.append(case("bad signature (last bit flipped)", "S1", "bad-signature", "entry",
                      [(bytes(bad_sig), c1.payload)]))
    other = IDS["alice"]
    cases.append(case("signed by another key than the author", "S1", "bad-signature", "entry",
                      [(sign_raw(other, c1.header_bytes), c1.payload)]))
    future = c1.header.to_map()
    future["ts"] = NOW_MS + 600_001
    cases.append(case("timestamp more than 600 s ahead of now_ms", "T1", "future-timestamp",
                      "entry", [(signed(future), c1.payload)], now_ms=NOW_MS))

    # --- payload rules (P) ---
    big_payload = canonical.encode({"blob": bytes(65537 - 9)})
    assert len(big_payload) == 65537, len(big_payload)
    hbig = header_map(ident, seq=1, ts=T0, kind="x-blob", payload=big_payload)
    hbig["psize"] = 100
    cases.append(case("payload of 65537 bytes", "P1", "payload-too-large", "entry",
                      [(signed(hbig), big_payload)]))
    cases.append(case("payload shorter than psize", "P2", "payload-size-mismatch", "entry",
                      [(c1.raw, c1.payload[:-1])]))
    swapped = bytearray(c1.payload)
    swapped[-1] ^= 0x01  # 'Carol' -> 'Carom': same size, other hash
    cases.append(case("payload hash mismatch", "P3", "payload-hash-mismatch", "entry",
                      [(c1.raw, bytes(swapped))]))
    unsorted_payload = msgpack.packb({"title": "Ladder", "category": "tools",
                                      "action": "lend"}, use_bin_type=True)
    cases.append(case("non-canonical payload: keys not sorted", "P4/M8", "non-canonical", "entry",
                      [offer_with(unsorted_payload)]))
    cases.append(case("trailing byte after the payload", "P4/M4", "trailing-bytes", "entry",
                      [offer_with(good_payload + b"\xc0")]))
    float_payload = msgpack.packb({"action": "lend", "category": "tools", "radius_km": 1.5,
                                   "title": "Ladder"}, use_bin_type=True)
    cases.append(case("float in payload", "P4/M5", "float", "entry",
                      [offer_with(float_payload)]))
    ext_payload = b"\x81\xa1x\xd4\x01\x00"  # {"x": fixext1 type 1}
    cases.append(case("msgpack ext in payload", "P4/M3b", "ext-type", "entry",
                      [offer_with(ext_payload)], note="any ext value is rejected"))
    # The C-layer (§2.2) on the payload of an unknown kind, where any msgpack value may do.
    for name, rule, code, raw_payload in (
            ("empty payload (psize 0)", "P4/M2", "malformed", b""),
            ("reserved byte c1", "P4/M3", "malformed", b"\xc1"),
            ("text that is not UTF-8", "P4/M3", "malformed", b"\xa1\xff"),
            ("array cut short", "P4/M3", "malformed", b"\x92\x01"),
            ("array of 10001 nils", "P4/M3a", "too-long", b"\xdc\x27\x11" + b"\xc0" * 10001),
            ("33 nested arrays", "P4/M6", "too-deep", b"\x91" * 32 + b"\x90"),
            ("map with an integer key", "P4/M7", "bad-map-key", b"\x81\x01\x01"),
            ("map with a bin key", "P4/M7", "bad-map-key", b"\x81\xc4\x01x\x01")):
        raw_header = signed(header_map(ident, seq=1, ts=T0, kind="x-raw", payload=raw_payload))
        cases.append(case(name, rule, code, "entry", [(raw_header, raw_payload)],
                          note="kind x-raw is unknown: only the C-layer applies (§9.4)"))

    def content_case(name: str, rule: str, code: str, content: dict[str, Any],
                     kind: str = "offer") -> None:
        p = canonical.encode(content)
        m = header_map(ident, seq=2, ts=T0 + MINUTE, kind=kind, payload=p, back=c1.id)
        c = case(name, rule, code, "entry", [(signed(m), p)])
        c["content"] = to_json(content)
        cases.append(c)

    base = {"title": "Ladder", "action": "lend", "category": "tools"}
    arr = canonical.encode(["Ladder"])
    cases.append(case("offer payload is an array, not a map", "C1", "payload-schema", "entry",
                      [offer_with(arr)]))
    content_case("unknown payload field", "C2", "payload-unknown-field", {**base, "colour": "red"})
    content_case("missing required field title", "C3", "payload-missing-field",
                 {"action": "lend", "category": "tools"})
    content_case("coordinates in an area", "C5", "area-not-h3", {**base, "area": "52.52,13.405"})
    content_case("H3 cell: digit after the resolution is not 7", "C5", "area-not-h3",
                 {**base, "area": AREA_RES8[:-1] + "0"})
    content_case("H3 cell: upper-case hex", "C5", "area-not-h3",
                 {**base, "area": AREA_RES8.upper()})
    content_case("H3 cell: pentagon base cell 4 with leading digit 1", "C5", "area-not-h3",
                 {**base, "area": PENTAGON_K_CELL})
    content_case("H3 cell of resolution 9", "C6", "area-too-precise", {**base, "area": AREA_RES9})
    content_case("quantity with a trailing zero", "C4", "payload-schema",
                 {**base, "quantity": {"value": "2.50", "unit": "kg"}})
    content_case("quantity zero", "C4", "payload-schema",
                 {**base, "quantity": {"value": "0", "unit": "kg"}})
    content_case("unknown action", "C4", "payload-schema", {**base, "action": "sell"})
    content_case("available_until before available_from", "C7", "payload-schema",
                 {**base, "available_from": T0, "available_until": T0 - 1})
    ref = hashlib.sha256(b"a listing").digest()
    content_case("claim naming both for_need and from_offer", "C8", "payload-schema",
                 {"target": ref, "target_author": IDS["alice"].public, "for_need": ref,
                  "from_offer": ref}, kind="claim")

    # --- runs (R rules) ---
    cases.append(case("valid chain minus its first entry (starts at seq 2)", "R1", "seq-gap",
                      "run", [(c2.raw, c2.payload), (c3.raw, c3.payload)]))
    cases.append(case("seq gap: 1 then 3", "R3", "seq-gap", "run",
                      [(c1.raw, c1.payload), (c3.raw, c3.payload)]))
    wrong_back = header_map(ident, seq=2, ts=T0 + MINUTE, kind="offer", payload=good_payload,
                            back=hashlib.sha256(b"not the previous entry").digest())
    cases.append(case("wrong backlink at seq 2", "R4", "backlink-mismatch", "run",
                      [(c1.raw, c1.payload), (signed(wrong_back), good_payload)]))
    early = header_map(ident, seq=2, ts=T0 - 1, kind="offer", payload=good_payload, back=c1.id)
    cases.append(case("timestamp before the predecessor's", "R5", "timestamp-regression", "run",
                      [(c1.raw, c1.payload), (signed(early), good_payload)]))
    alice1 = logs["alice"].entries[0]
    cases.append(case("continues another author's entry", "R2", "author-mismatch", "run",
                      [(c2.raw, c2.payload)], previous=alice1))
    bad_last = bytearray(c3.raw)
    bad_last[-1] ^= 0x01
    cases.append(case("run whose newest signature is bad", "S1", "bad-signature", "run",
                      [(c1.raw, c1.payload), (c2.raw, c2.payload), (bytes(bad_last), None)]))
    cases.append(case("run with a payload that does not match", "P3", "payload-hash-mismatch",
                      "run", [(c1.raw, bytes(swapped)), (c2.raw, c2.payload)]))
    cases.append(case("empty run", "R0", "empty-run", "run", []))
    late = header_map(ident, seq=2, ts=NOW_MS + 600_001, kind="offer", payload=good_payload,
                      back=c1.id)
    cases.append(case("run whose newest entry is more than 600 s ahead of now_ms", "T1",
                      "future-timestamp", "run", [(c1.raw, c1.payload), (signed(late), None)],
                      now_ms=NOW_MS, note="in a run only the newest entry is checked (§5.5)"))

    return {
        "description": "Inputs every implementation must reject with exactly this error "
                       "code. context 'entry': verify one signed header (and payload if not "
                       "null) on its own signature, with the future-timestamp check only "
                       "when now_ms is not null. context 'run': verify a contiguous run, "
                       "continuing 'previous' (a signed header, already authentic) if not "
                       "null. Rule names refer to docs/protocol.md.",
        "cases": cases,
    }


# --- fork, seal, sync ---------------------------------------------------------------------

def build_fork(logs: dict[str, Log]) -> dict[str, Any]:
    carol = logs["carol"]
    c1, c2, c3 = carol.entries
    fork2 = create_entry(carol.ident, "offer",
                         {"title": "Wheelbarrow", "action": "lend", "category": "tools/garden"},
                         previous=c1, timestamp=T0 + MINUTE)
    proof = make_fork_proof(c2, fork2)
    enc = proof.encode()
    a, b = proof.first, proof.second
    swapped = canonical.encode({"a": b.raw, "b": a.raw})
    same = canonical.encode({"a": c2.raw, "b": c2.raw})
    diff_seq = ordered(c2.raw, c3.raw)
    bad_sig = bytearray(fork2.raw)
    bad_sig[-1] ^= 0x01
    bad_sig = bytes(bad_sig)
    alice1 = logs["alice"].entries[0]
    return {
        "description": "A fork proof: canonical msgpack {a, b} of two signed headers by "
                       "one author at one seq, a's entry id < b's. 'invalid' proofs must be "
                       "rejected with code not-a-fork.",
        "author": carol.ident.node_id,
        "seq": 2,
        "entries": [
            {"signed_header": c2.raw.hex(), "entry_id": c2.id.hex(),
             "payload": c2.payload.hex()},
            {"signed_header": fork2.raw.hex(), "entry_id": fork2.id.hex(),
             "payload": fork2.payload.hex()},
        ],
        "proof": enc.hex(),
        "a_id": a.id.hex(),
        "b_id": b.id.hex(),
        "invalid": [
            {"name": name, "rule": rule, "proof": data.hex(), "code": "not-a-fork"}
            for name, rule, data in (
                ("keys not sorted", "F1", msgpack.packb({"b": b.raw, "a": a.raw},
                                                        use_bin_type=True)),
                ("over 2048 bytes", "F1", canonical.encode({"a": a.raw, "b": b.raw,
                                                            "c": bytes(2048)})),
                ("an extra key", "F2", canonical.encode({"a": a.raw, "b": b.raw, "c": 1})),
                ("only one header", "F2", canonical.encode({"a": a.raw})),
                ("a header that breaks H rules (64 zero bytes)", "F3",
                 canonical.encode({"a": a.raw, "b": bytes(64)})),
                ("a signature that does not verify", "F4", ordered(c2.raw, bad_sig)),
                ("different authors", "F5", ordered(c1.raw, alice1.raw)),
                ("different seq numbers", "F6", diff_seq),
                ("the same entry twice", "F7", same),
                ("headers in the wrong order", "F8", swapped),
            )
        ],
    }


def ordered(x: bytes, y: bytes) -> bytes:
    """A proof-shaped map {a, b} of two signed headers in entry id order."""
    a, b = sorted((x, y), key=lambda raw: hashlib.sha256(raw).digest())
    return canonical.encode({"a": a, "b": b})


def build_seal(seal_vec: dict[str, Any], box: bytes) -> dict[str, Any]:
    last_flipped = bytearray(box)
    last_flipped[-1] ^= 0x01  # the box's last byte is the value of "v" (keys sorted)
    m = canonical.decode(box)

    def variant(**fields: Any) -> str:
        return canonical.encode({**m, **fields}).hex()

    def flip(data: bytes, index: int) -> bytes:
        out = bytearray(data)
        out[index] ^= 0x01
        return bytes(out)

    unsorted = msgpack.packb(dict(sorted(m.items(), reverse=True)), use_bin_type=True)
    oversize = variant(ct=bytes(4096))
    assert len(bytes.fromhex(oversize)) > 4096

    def bad(name: str, rule: str, data: str, open_with: str = "alice",
            code: str = "bad-seal") -> dict[str, Any]:
        return {"name": name, "rule": rule, "box": data, "open_with": open_with, "code": code}

    return {
        "description": "A sealed box from bob to alice (X25519 static-static, HKDF-SHA256, "
                       "ChaCha20-Poly1305), with intermediate values. The same box is the "
                       "'sealed' field of bob's first claim in entries.json. 'invalid' boxes "
                       "must be refused with 'code' when opened with the sealing key of "
                       "'open_with'.",
        **seal_vec,
        "invalid": [
            bad("last byte of the box flipped: v = 0 (the ciphertext is intact)", "O2",
                bytes(last_flipped).hex()),
            bad("last byte of the tag flipped", "O6", variant(ct=flip(m["ct"], -1))),
            bad("first ciphertext byte flipped", "O6", variant(ct=flip(m["ct"], 0))),
            bad("nonce changed", "O6", variant(nonce=flip(m["nonce"], 0))),
            bad("sender key is the all-zero point (X25519 result all zeros)", "O6",
                variant(**{"from": bytes(32)})),
            bad("keys not sorted", "O1", unsorted.hex()),
            bad("box over 4096 bytes", "O1", oversize),
            bad("an extra key", "O2", variant(x=1)),
            bad("nonce of 11 bytes", "O3", variant(nonce=m["nonce"][:11])),
            bad("ct shorter than a tag", "O4", variant(ct=m["ct"][:15])),
            bad("opened by a third party", "O5", box.hex(), open_with="carol",
                code="not-a-party"),
        ],
    }


def build_sync(logs: dict[str, Log], proof: bytes) -> dict[str, Any]:
    heads = {log.ident.public: sync.Head(log.head.seq, log.head.id) for log in logs.values()}
    enc = sync.encode_heads(heads)
    carol = logs["carol"].entries
    frames = [sync.encode_frame(carol[0].raw, carol[0].payload),
              sync.encode_frame(carol[1].raw, None),
              sync.encode_frame(carol[2].raw, carol[2].payload)]
    stream = b"".join(frames)
    noncanon = msgpack.packb([carol[0].raw, carol[0].payload], use_bin_type=True)
    noncanon = b"\xdc\x00\x02" + noncanon[1:]  # array16 header instead of fixarray
    return {
        "description": "Heads vector {author hex: [seq, head entry id]} in canonical form, "
                       "its digest SHA-256(prefix || canonical heads), and a stream of "
                       "frames [signed header, payload or nil].",
        "heads": {log.ident.public.hex(): {"seq": log.head.seq, "id": log.head.id.hex()}
                  for log in logs.values()},
        "heads_canonical": enc.hex(),
        "heads_digest_prefix": sync.HEADS_DIGEST_PREFIX.hex(),
        "heads_digest": sync.heads_digest(heads).hex(),
        "empty_heads_canonical": sync.encode_heads({}).hex(),
        "empty_heads_digest": sync.heads_digest({}).hex(),
        "frames": [{"signed_header": carol[0].raw.hex(), "payload": carol[0].payload.hex()},
                   {"signed_header": carol[1].raw.hex(), "payload": None},
                   {"signed_header": carol[2].raw.hex(), "payload": carol[2].payload.hex()}],
        "frame_stream": stream.hex(),
        "invalid_streams": [
            {"name": name, "rule": rule, "stream": data.hex(), "code": code}
            for name, rule, code, data in (
                *bad_frames(carol[0].raw, stream),
                ("frame array with an array16 header", "W5", "non-canonical", noncanon),
                ("stream cut inside the last frame", "W6", "truncated", stream[:-1]),
            )
        ],
        **payload_vectors(carol),
        **round_vectors(logs, proof),
    }


def bad_frames(raw: bytes, stream: bytes) -> list[tuple[str, str, str, bytes]]:
    """Pages that break W1-W4 (§13.3), each after one good frame where it matters."""
    frame = sync.encode_frame
    return [
        ("a str where a frame belongs", "W1", "bad-frame", stream + b"\xa1x"),
        ("a map where a frame belongs", "W1", "bad-frame", b"\x81\xa1a\xc0"),
        ("an ext value where a frame belongs", "W1", "bad-frame", b"\xd4\x01\x00"),
        ("a str inside a frame", "W1", "bad-frame", b"\x92\xa1x\xc0"),
        ("an integer where a frame belongs", "W1", "bad-frame", b"\x01"),
        ("a frame of three items", "W2", "bad-frame", canonical.encode([raw, None, None])),
        ("a frame of one item", "W2", "bad-frame", canonical.encode([raw])),
        ("a frame whose payload is an integer", "W2", "bad-frame", canonical.encode([raw, 0])),
        ("a frame whose header is nil", "W2", "bad-frame", canonical.encode([None, None])),
        ("a signed header of 577 bytes", "W3", "header-too-large", frame(bytes(577), None)),
        ("a payload of 65537 bytes", "W4", "payload-too-large", frame(raw, bytes(65537))),
    ]


def large_heads() -> dict[bytes, sync.Head]:
    """10,001 logs, more than one heads chunk holds: author i = SHA-256 of i as 4 bytes
    big-endian (i = 0 ... 10000), each at seq 1 with head id SHA-256(author)."""
    authors = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(10_001)]
    return {a: sync.Head(1, hashlib.sha256(a).digest()) for a in authors}


def round_vectors(logs: dict[str, Log], proof: bytes) -> dict[str, Any]:
    """§14.1: a state (heads chunks and fork proofs), its digest, a want; and the states,
    wants and heads vectors every node must refuse, each with the rule it breaks."""
    carol = logs["carol"].entries
    # carol's log is forked at seq 2 (fork.json), so a node advertises it at seq 1 (§8.3).
    heads = {log.ident.public: sync.Head(log.head.seq, log.head.id)
             for log in logs.values() if log.name != "carol"}
    heads[carol[0].author] = sync.Head(1, carol[0].id)
    state = sync.encode_state(heads, [proof])
    empty = sync.encode_state({}, [])
    large = sync.encode_state(large_heads(), [])
    items = sorted((a.hex(), [h.seq, h.id]) for a, h in large_heads().items())
    swapped = canonical.encode({"forks": [], "heads": [dict(items[1:]), dict(items[:1])]})
    alice, bob = logs["alice"].ident.public.hex(), logs["bob"].ident.public.hex()
    a_head = [1, carol[0].id]
    want = {carol[0].author: 1, logs["alice"].ident.public: 0}

    def st(value: Any) -> bytes:
        return canonical.encode(value)

    return {
        "state": {
            "heads": {a.hex(): {"seq": h.seq, "id": h.id.hex()} for a, h in heads.items()},
            "forks": [proof.hex()],
            "canonical": state.hex(),
            "digest_prefix": sync.STATE_DIGEST_PREFIX.hex(),
            "digest": sync.state_digest(state).hex(),
            "note": "carol's log is forked at seq 2 (fork.json): it is advertised at seq 1, "
                    "the newest entry a node serves of it, with the proof beside it",
        },
        "empty_state": {"canonical": empty.hex(), "digest": sync.state_digest(empty).hex()},
        "large_state": {
            "recipe": "10,001 logs: author i = SHA-256 of i as 4 bytes big-endian "
                      "(i = 0 ... 10000), each at seq 1 with head id SHA-256(author); no "
                      "fork proofs. The heads fill two chunks: the 10,000 smallest author "
                      "hex keys, then the largest one.",
            "chunk_sizes": [10_000, 1],
            "length": len(large),
            "sha256": hashlib.sha256(large).hexdigest(),
            "digest": sync.state_digest(large).hex(),
        },
        "want": {"want": {a.hex(): after for a, after in want.items()},
                 "canonical": sync.encode_want(want).hex()},
        "empty_want": {"canonical": sync.encode_want({}).hex()},
        "invalid_heads": [
            {"name": name, "rule": rule, "heads": data.hex(), "code": code}
            for name, rule, code, data in (
                ("keys not sorted", "HV1", "non-canonical",
                 msgpack.packb({bob: a_head, alice: a_head}, use_bin_type=True)),
                ("an array, not a map", "HV2", "bad-heads", st([[alice, a_head]])),
                ("a key in upper-case hex", "HV3", "bad-heads", st({alice.upper(): a_head})),
                ("a key of 63 hex digits", "HV3", "bad-heads", st({alice[:63]: a_head})),
                ("a key in node id form (am...)", "HV3", "bad-heads",
                 st({"am" + alice: a_head})),
                ("seq 0", "HV4", "bad-heads", st({alice: [0, carol[0].id]})),
                ("seq true (a boolean)", "HV4", "bad-heads", st({alice: [True, carol[0].id]})),
                ("a head id of 31 bytes", "HV4", "bad-heads", st({alice: [1, carol[0].id[:31]]})),
                ("a head of three items", "HV4", "bad-heads", st({alice: [*a_head, 0]})),
                ("a head id as hex text", "HV4", "bad-heads",
                 st({alice: [1, carol[0].id.hex()]})),
            )
        ],
        "invalid_states": [
            {"name": name, "rule": rule, "state": data.hex(), "code": code}
            for name, rule, code, data in (
                ("keys not sorted", "ST1", "non-canonical",
                 msgpack.packb({"heads": [], "forks": []}, use_bin_type=True)),
                ("a trailing byte", "ST1", "trailing-bytes", empty + b"\xc0"),
                ("a bare heads vector", "ST2", "bad-state", sync.encode_heads(heads)),
                ("an extra key", "ST2", "bad-state", st({"forks": [], "heads": [], "x": 1})),
                ("no forks key", "ST2", "bad-state", st({"heads": []})),
                ("forks is a map", "ST3", "bad-state", st({"forks": {}, "heads": []})),
                ("a fork proof as hex text", "ST3", "bad-state",
                 st({"forks": [proof.hex()], "heads": []})),
                ("forks not sorted", "ST4", "non-canonical",
                 st({"forks": [b"\x02", b"\x01"], "heads": []})),
                ("the same fork proof twice", "ST4", "non-canonical",
                 st({"forks": [proof, proof], "heads": []})),
                ("heads is one map, not an array of chunks", "ST5", "bad-state",
                 st({"forks": [], "heads": {alice: a_head}})),
                ("a heads chunk that is an array", "ST5", "bad-state",
                 st({"forks": [], "heads": [[alice, a_head]]})),
                ("an empty heads chunk", "ST6", "non-canonical", st({"forks": [], "heads": [{}]})),
                ("a short chunk before the last", "ST6", "non-canonical",
                 st({"forks": [], "heads": [{alice: a_head}, {bob: a_head}]})),
                ("a chunk with a key in upper-case hex", "ST8", "bad-heads",
                 st({"forks": [], "heads": [{alice.upper(): a_head}]})),
                ("a chunk with seq 0", "ST8", "bad-heads",
                 st({"forks": [], "heads": [{alice: [0, carol[0].id]}]})),
            )
        ],
        "invalid_large_states": [{
            "name": "large_state's chunks out of author order",
            "rule": "ST7", "recipe": "large_state's authors, heads = [{the 10,000 largest "
                                     "author hex keys}, {the smallest one}]: the first chunk "
                                     "is full, but the second sorts before it",
            "length": len(swapped), "sha256": hashlib.sha256(swapped).hexdigest(),
            "code": "non-canonical",
        }],
        "invalid_wants": [
            {"name": name, "rule": rule, "want": data.hex(), "code": code}
            for name, rule, code, data in (
                ("keys not sorted", "WT1", "non-canonical",
                 msgpack.packb({"want": {bob: 0, alice: 0}}, use_bin_type=True)),
                ("a bare map of authors", "WT2", "bad-want", st({alice: 0})),
                ("want is an array", "WT2", "bad-want", st({"want": [alice]})),
                ("an extra key", "WT2", "bad-want", st({"want": {}, "x": 1})),
                ("a key in node id form (am...)", "WT3", "bad-want",
                 st({"want": {"am" + alice: 0}})),
                ("a key in upper-case hex", "WT3", "bad-want", st({"want": {alice.upper(): 0}})),
                ("after -1", "WT4", "bad-want", st({"want": {alice: -1}})),
                ("after false (a boolean)", "WT4", "bad-want", st({"want": {alice: False}})),
                ("after as text", "WT4", "bad-want", st({"want": {alice: "0"}})),
            )
        ],
    }


def payload_vectors(carol: list[Entry]) -> dict[str, Any]:
    """A payload request (spec §13.4) for carol's seq 1 and 3 and the answer of a node
    that holds only seq 3's payload; and requests every node must refuse."""
    ids = sorted([carol[0].id, carol[2].id])
    request = sync.encode_payload_request(ids)
    answer = sync.encode_frame(carol[2].raw, carol[2].payload)
    many = [hashlib.sha256(i.to_bytes(2, "big")).digest() for i in range(501)]
    return {
        "payload_request": {"ids": [i.hex() for i in ids], "canonical": request.hex()},
        "payload_answer": {"held": [carol[2].id.hex()], "stream": answer.hex()},
        "invalid_payload_requests": [
            {"name": name, "rule": rule, "request": data.hex(), "code": code}
            for name, rule, code, data in (
                ("1000 ids: over 32 KiB", "PR1/M1", "too-large", canonical.encode(
                    {"ids": sorted(hashlib.sha256(i.to_bytes(2, "big")).digest()
                                   for i in range(1000))})),
                ("a trailing byte", "PR1", "trailing-bytes", request + b"\xc0"),
                ("another key", "PR2", "bad-payload-request",
                 canonical.encode({"want": [ids[0]]})),
                ("ids is a bin, not an array", "PR2", "bad-payload-request",
                 canonical.encode({"ids": ids[0]})),
                ("no ids", "PR3", "bad-payload-request", canonical.encode({"ids": []})),
                ("501 ids", "PR3", "bad-payload-request",
                 canonical.encode({"ids": sorted(many)})),
                ("an id of 31 bytes", "PR4", "bad-payload-request",
                 canonical.encode({"ids": [ids[0][:31]]})),
                ("ids as hex text", "PR4", "bad-payload-request",
                 canonical.encode({"ids": [i.hex() for i in ids]})),
                ("ids not in ascending order", "PR5", "non-canonical",
                 canonical.encode({"ids": ids[::-1]})),
                ("the same id twice", "PR5", "non-canonical",
                 canonical.encode({"ids": [ids[0], ids[0]]})),
            )
        ],
    }


# --- exchange fold (spec §9.6, §9.7) -----------------------------------------------------

EXCHANGE_SECRETS = {"dora": bytes([0x11] * 32), "eli": bytes([0x22] * 32),
                    "fay": bytes([0x33] * 32)}


class ExchangeLog(Log):
    """A log of one of the exchange vectors' own identities (not in entries.json)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ident = Identity.from_secret(EXCHANGE_SECRETS[name])
        self.entries = []


def build_exchange() -> dict[str, Any]:
    """Signed logs of small exchanges and the state every node must fold from them in any
    arrival order. The expected values are worked out by hand from §9.6 and §9.7, not by
    running an implementation."""
    logs = {name: ExchangeLog(name) for name in EXCHANGE_SECRETS}
    t = iter(range(T0, T0 + 1000 * MINUTE, MINUTE))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in logs}
    ids: dict[str, bytes] = {}

    def add(name: str, label: str, kind: str, content: dict[str, Any]) -> bytes:
        vec = entry_vector(logs[name], label, kind, content, next(t))
        out[name].append(vec)
        ids[label] = bytes.fromhex(vec["entry_id"])
        return ids[label]

    def listing(name: str, label: str, kind: str, category: str,
                quantity: tuple[str, str] | None) -> None:
        content: dict[str, Any] = {"title": label, "action": "transfer", "category": category}
        if quantity is not None:
            content["quantity"] = {"value": quantity[0], "unit": quantity[1]}
        add(name, label, kind, content)

    def claim(name: str, label: str, target: str, owner: str,
              quantity: tuple[str, str] | None = None, **link: str) -> None:
        content: dict[str, Any] = {"target": ids[target],
                                   "target_author": logs[owner].ident.public}
        if quantity is not None:
            content["quantity"] = {"value": quantity[0], "unit": quantity[1]}
        content.update({k: ids[v] for k, v in link.items()})
        add(name, label, "claim", content)

    def answer(name: str, kind: str, claim_label: str, target: str, claimant: str,
               quantity: tuple[str, str] | None = None) -> None:
        content: dict[str, Any] = {"target": ids[target], "claim": ids[claim_label],
                                   "claim_author": logs[claimant].ident.public}
        if quantity is not None:
            content["quantity"] = {"value": quantity[0], "unit": quantity[1]}
        add(name, f"{kind} {claim_label}", kind, content)

    # Units converted: a need in kg filled from an offer in g; a claim in lb (truncated).
    listing("eli", "flour offer", "offer", "food/pantry", ("1500", "g"))
    listing("dora", "flour need", "need", "food/pantry", ("1", "kg"))
    claim("dora", "flour claim", "flour offer", "eli", ("1000", "g"), for_need="flour need")
    answer("eli", "accept", "flour claim", "flour offer", "dora", ("1000", "g"))
    claim("fay", "flour in lb", "flour offer", "eli", ("1", "lb"))
    answer("eli", "accept", "flour in lb", "flour offer", "fay")
    answer("dora", "fulfil", "flour claim", "flour offer", "dora")
    # Synonyms are the same unit; an accept in a unit that does not convert counts as
    # absent (the claim's quantity applies).
    listing("eli", "bread offer", "offer", "food/bread", ("10", "loaves"))
    claim("fay", "bread claim", "bread offer", "eli", ("4", "loaf"))
    answer("eli", "accept", "bread claim", "bread offer", "fay", ("3", "Loaf"))
    claim("fay", "bread claim 2", "bread offer", "eli", ("2", "loaf"))
    answer("eli", "accept", "bread claim 2", "bread offer", "fay", ("5", "kg"))
    # The symmetric case: a claim on a need, answered from the claimant's offer.
    listing("fay", "blanket need", "need", "goods", ("6", "each"))
    listing("eli", "blanket offer", "offer", "goods", ("4", "pieces"))
    claim("eli", "blanket claim", "blanket need", "fay", ("4", "each"),
          from_offer="blanket offer")
    answer("fay", "accept", "blanket claim", "blanket need", "eli", ("4", "each"))
    # Two draws asking more than the need lacks: walked in dora's log order.
    listing("dora", "rice need", "need", "food/pantry", ("5", "kg"))
    listing("eli", "rice offer", "offer", "food/pantry", ("3", "kg"))
    listing("fay", "rice offer 2", "offer", "food", ("4000", "g"))
    claim("dora", "rice claim", "rice offer", "eli", ("3", "kg"), for_need="rice need")
    claim("dora", "rice claim 2", "rice offer 2", "fay", ("4000", "g"), for_need="rice need")
    answer("fay", "accept", "rice claim 2", "rice offer 2", "dora", ("4000", "g"))
    answer("eli", "accept", "rice claim", "rice offer", "dora", ("3", "kg"))
    # A declined draw commits nothing; a draw naming another group's need is ignored.
    listing("dora", "meal need", "need", "food/meals", ("2", "meal"))
    listing("eli", "meal offer", "offer", "food/meals", ("5", "meals"))
    claim("dora", "meal claim", "meal offer", "eli", for_need="meal need")
    answer("eli", "decline", "meal claim", "meal offer", "dora")
    claim("fay", "meal claim by fay", "meal offer", "eli", ("1", "meal"), for_need="meal need")
    answer("eli", "accept", "meal claim by fay", "meal offer", "fay", ("1", "meal"))
    # No quantities: the first accept and the draw each take the listing whole.
    listing("dora", "ladder need", "need", "tools", None)
    listing("fay", "ladder offer", "offer", "tools", None)
    claim("dora", "ladder claim", "ladder offer", "fay", for_need="ladder need")
    answer("fay", "accept", "ladder claim", "ladder offer", "dora")

    def state(committed: str, fulfilled: str, status: str) -> dict[str, str]:
        return {"committed": committed, "fulfilled": fulfilled, "status": status}

    listings = {
        "flour offer": state("1453.592", "1000", "partly-committed"),
        "flour need": state("1", "1", "fulfilled"),
        "bread offer": state("5", "0", "partly-committed"),
        "blanket need": state("4", "0", "partly-committed"),
        "blanket offer": state("4", "0", "committed"),
        "rice need": state("5", "0", "committed"),
        "rice offer": state("3", "0", "committed"),
        "rice offer 2": state("4000", "0", "committed"),
        "meal need": state("0", "0", "open"),
        "meal offer": state("1", "0", "partly-committed"),
        "ladder need": state("1", "0", "committed"),
        "ladder offer": state("1", "0", "committed"),
    }

    def c(status: str, committed: str | None, drawn: str | None) -> dict[str, Any]:
        return {"status": status, "committed": committed, "drawn": drawn}

    claims = {
        "flour claim": c("fulfilled", "1000", "1"),
        "flour in lb": c("accepted", "453.592", None),
        "bread claim": c("accepted", "3", None),
        "bread claim 2": c("accepted", "2", None),
        "blanket claim": c("accepted", "4", "4"),
        "rice claim": c("accepted", "3", "3"),
        "rice claim 2": c("accepted", "4000", "2"),
        "meal claim": c("declined", None, "0"),
        "meal claim by fay": c("accepted", "1", "0"),
        "ladder claim": c("accepted", "1", "1"),
    }
    return {
        "description": "Exchange fold vectors (docs/protocol.md §9.6, §9.7): signed logs "
                       "(each identity's entries in log order) and the state a node must "
                       "fold from them whatever order the logs arrive in. 'listings' and "
                       "'claims' are keyed by the label of the entry; committed and "
                       "fulfilled are decimal text in the listing's unit; 'drawn' is what "
                       "a claim commits on its author's own listing (for_need / "
                       "from_offer), null without one. No listing expires.",
        "identities": [{"name": n, "secret_key": lg.ident.secret.hex(),
                        "node_id": lg.ident.node_id} for n, lg in logs.items()],
        "logs": out,
        "listings": {k: {"id": ids[k].hex(), **v} for k, v in listings.items()},
        "claims": {k: {"id": ids[k].hex(), **v} for k, v in claims.items()},
    }


# --- output -------------------------------------------------------------------------------

def build() -> dict[str, dict[str, Any]]:
    entries, logs, seal_vec, box = build_entries()
    fork = build_fork(logs)
    return {
        "entries.json": entries,
        "invalid.json": build_invalid(logs),
        "fork.json": fork,
        "seal.json": build_seal(seal_vec, box),
        "sync.json": build_sync(logs, bytes.fromhex(fork["proof"])),
    }


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def markdown(files: dict[str, dict[str, Any]]) -> str:
    """The excerpt quoted in docs/protocol.md (section Test vectors)."""
    lines: list[str] = []
    ent = files["entries.json"]
    carol = next(i for i in ent["identities"] if i["name"] == "carol")
    lines += ["```", f"secret_key   {carol['secret_key']}",
              f"node_id      {carol['node_id']}", f"seal_public  {carol['seal_public']}", "```",
              ""]
    for e in ent["chain"]:
        lines += [f"Chain entry seq {e['seq']} (kind `{e['kind']}`, ts {e['timestamp']}, "
                  f"content `{json.dumps(e['content'], separators=(',', ':'))}`):", "",
                  "```",
                  f"payload        {e['payload']}",
                  f"header_bytes   {e['header_bytes']}",
                  f"signature      {e['signature']}",
                  f"entry_id       {e['entry_id']}",
                  "```", ""]
    inv = {c["name"]: c for c in files["invalid.json"]["cases"]}
    for name in ("bad signature (last bit flipped)", "non-canonical header: seq 1 as uint8 (cc 01)",
                 "wrong backlink at seq 2"):
        c = inv[name]
        lines += [f"Invalid ({c['context']}), {name} → `{c['code']}`:", "", "```"]
        if c["context"] == "entry":
            lines.append(f"signed_header  {c['signed_header']}")
        else:
            for i, item in enumerate(c["run"]):
                lines.append(f"run[{i}]         {item['signed_header']}")
        lines += ["```", ""]
    s = files["sync.json"]
    lines += ["Heads vector of the three logs and its digest:", "", "```",
              f"heads_canonical  {s['heads_canonical']}",
              f"heads_digest     {s['heads_digest']}",
              f"empty digest     {s['empty_heads_digest']}", "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    files = build()
    if "--markdown" in sys.argv[1:]:
        sys.stdout.write(markdown(files))
        return
    for name, doc in {**files, "exchange.json": build_exchange()}.items():
        (HERE / name).write_text(dump(doc), encoding="utf-8")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
