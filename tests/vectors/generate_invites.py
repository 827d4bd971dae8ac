"""Regenerate tests/vectors/invites.json: peering by invite code (docs/protocol.md §14.6).

Run from anywhere:  python tests/vectors/generate_invites.py

Deterministic: alice (secret key bytes 00..1f) invites, bob (32 x 07) joins, with a
fixed invite secret, expiry and join nonce. Bytes are lowercase hex strings.
`tests/test_peer_invites.py` checks the file against node/services/peer_invites.py and
recomputes every derived value with hashlib, hmac and base64 alone.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from node.services import peer_invites as pi  # noqa: E402
from protocol import canonical  # noqa: E402
from protocol.identity import Identity  # noqa: E402

ALICE = Identity.from_secret(bytes(range(32)))
BOB = Identity.from_secret(bytes([7] * 32))
SECRET = bytes(range(0xA0, 0xB0))
NONCE = bytes(range(0xC0, 0xD0))
EXPIRES = 1_795_003_600  # seconds: an hour after the entries' first timestamp
INVITER_URL = "https://north.example.org"
JOINER_URL = "https://south.example.org:8443/aid"


def code_text(record: bytes, check: bytes | None = None) -> str:
    """The text form of a record (with its checksum unless another is given)."""
    raw = record + (check if check is not None else pi.checksum(record))
    return "ami" + base64.b32encode(raw).decode().rstrip("=").lower()


def flip(text: str, index: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    ch = text[index]
    return text[:index] + alphabet[(alphabet.index(ch) + 1) % 32] + text[index + 1:]


def build() -> dict[str, Any]:
    invite = pi.Invite(ALICE.public, INVITER_URL, SECRET, EXPIRES)
    record = canonical.encode([1, ALICE.public, INVITER_URL, SECRET, EXPIRES])
    text = pi.encode_code(invite)
    assert text == code_text(record)
    proof_message = pi.PROOF_PREFIX + ALICE.public + BOB.public + NONCE + JOINER_URL.encode()
    proof = pi.proof(invite.key, ALICE.public, BOB.public, NONCE, JOINER_URL)
    request = pi.encode_join_request(pi.JoinRequest(invite.id, NONCE, proof, JOINER_URL))

    def rec(*fields: Any) -> bytes:
        return canonical.encode(list(fields))

    good = [1, ALICE.public, INVITER_URL, SECRET, EXPIRES]
    invalid_codes = [
        ("wrong prefix", "amx" + text[3:], 1, "bad-invite"),
        ("not base32 (digit 1)", text[:-1] + "1", 1, "bad-invite"),
        ("cut to an impossible base32 length", text[:-1], 1, "bad-invite"),
        ("unused bits of the last character set", text[:-1] + chr(ord(text[-1]) + 1), 1,
         "bad-invite"),
        ("prefix alone", "ami", 1, "bad-invite"),
        ("one character changed (a typo)", flip(text, 20), 2, "invite-checksum"),
        ("checksum of another record", code_text(record, pi.checksum(record + b"x")), 2,
         "invite-checksum"),
        ("record not canonical: expiry as uint64", code_text(
            b"\x95" + b"".join(canonical.encode(x) for x in good[:4])
            + b"\xcf" + EXPIRES.to_bytes(8, "big")), 3, "bad-invite"),
        ("record with trailing bytes", code_text(record + b"\x00"), 3, "bad-invite"),
        ("version 2", code_text(rec(2, *good[1:])), 4, "bad-invite"),
        ("a map, not an array", code_text(canonical.encode({"v": 1})), 4, "bad-invite"),
        ("four fields", code_text(rec(*good[:4])), 4, "bad-invite"),
        ("node key of 31 bytes", code_text(rec(1, ALICE.public[:31], *good[2:])), 5,
         "bad-invite"),
        ("secret of 15 bytes", code_text(rec(1, ALICE.public, INVITER_URL, SECRET[:15],
                                             EXPIRES)), 5, "bad-invite"),
        ("negative expiry", code_text(rec(*good[:4], -1)), 5, "bad-invite"),
        ("url is not http(s)", code_text(rec(1, ALICE.public, "ftp://north.example.org",
                                             SECRET, EXPIRES)), 6, "bad-invite"),
        ("url is the API, not the base URL", code_text(rec(
            1, ALICE.public, INVITER_URL + "/api/v1", SECRET, EXPIRES)), 6, "bad-invite"),
    ]
    fields = {"invite": invite.id, "nonce": NONCE, "proof": proof, "url": JOINER_URL}
    invalid_requests = [
        ("over 4 KiB", canonical.encode({**fields, "url": "https://a.example/" + "x" * 4096}),
         1, "too-large"),
        ("not canonical: keys out of order", msgpack.packb(
            dict(sorted(fields.items(), reverse=True)), use_bin_type=True), 1, "non-canonical"),
        ("an extra key", canonical.encode({**fields, "name": "Southside"}), 2,
         "bad-join-request"),
        ("proof missing", canonical.encode({k: v for k, v in fields.items() if k != "proof"}),
         2, "bad-join-request"),
        ("invite id of 15 bytes", canonical.encode({**fields, "invite": invite.id[:15]}), 3,
         "bad-join-request"),
        ("nonce as text", canonical.encode({**fields, "nonce": NONCE.hex()}), 3,
         "bad-join-request"),
        ("url with credentials", canonical.encode(
            {**fields, "url": "https://me:pw@south.example.org"}), 4, "bad-join-request"),
    ]
    return {
        "description": "Peering by invite code, docs/protocol.md §14.6. alice invites, bob "
                       "joins; bytes are lowercase hex.",
        "inviter": {"secret_key": bytes(range(32)).hex(), "node_id": ALICE.node_id},
        "joiner": {"secret_key": bytes([7] * 32).hex(), "node_id": BOB.node_id},
        "code": {
            "node": ALICE.public.hex(), "url": INVITER_URL, "secret": SECRET.hex(),
            "expires": EXPIRES, "record": record.hex(), "checksum": pi.checksum(record).hex(),
            "text": text, "link": pi.link(INVITER_URL, text),
            "invite_id": invite.id.hex(), "join_key": invite.key.hex(),
        },
        "join_request": {
            "url": JOINER_URL, "nonce": NONCE.hex(), "proof_message": proof_message.hex(),
            "proof": proof.hex(), "canonical": request.hex(),
        },
        "join_answer": {
            "node": ALICE.public.hex(), "name": "Northside", "url": INVITER_URL,
            "added": True,
            "canonical": pi.encode_answer(ALICE.public, "Northside", INVITER_URL, True).hex(),
        },
        "invalid_codes": [{"name": n, "text": t, "step": s, "code": c}
                          for n, t, s, c in invalid_codes],
        "invalid_join_requests": [{"name": n, "request": r.hex(), "step": s, "code": c}
                                  for n, r, s, c in invalid_requests],
    }


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    (HERE / "invites.json").write_text(dump(build()), encoding="utf-8")
    print(f"wrote {HERE / 'invites.json'}")
