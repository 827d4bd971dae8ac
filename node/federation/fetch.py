"""What a round takes from a peer besides the pull: fork proofs and missing payloads.

Both are bounded per round and judged before they cost much: a fork proof is verified
only for an author this node replicates, and a payload is taken only for an entry this
node marked missing, checked against the header it already holds (spec §13.4, §14.3).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from protocol import ProtocolError, canonical, decode_fork_proof, decode_header
from protocol.fork import MAX_FORK_PROOF_SIZE
from protocol.identity import sha256
from protocol.sync import (
    MAX_PAYLOAD_IDS,
    PAGE_MAX_BYTES,
    Head,
    decode_frames,
    encode_payload_request,
)

from ..services import replication
from .link import PeerLink, SyncFailed, http_error

log = logging.getLogger("aidmesh.gossip")
FORKS_PER_ROUND = 16  # fork proofs verified and stored per round with one peer
PAYLOAD_RETRY_S = 60.0  # a payload a peer did not have is asked of it again after this,
# or as soon as it notifies us of a commit (Gossip.poke)


def _author_of(raw: bytes) -> bytes | None:
    """The author a fork proof names, read without checking any signature."""
    try:
        m = canonical.decode(raw, max_size=MAX_FORK_PROOF_SIZE)
        return decode_header(m["a"]).author if isinstance(m, dict) and "a" in m else None
    except (ProtocolError, TypeError):
        return None


async def forks(gossip: Any, link: PeerLink, proofs: list[bytes]) -> bool:
    """Verify and store the peer's fork proofs for authors in our scope, at most
    FORKS_PER_ROUND, in one transaction. True if some were left for the next round.

    ``gossip`` is the node's Gossip (typed loosely: gossip.py imports this module)."""
    node = gossip.node
    me, hops = node.identity.public, node.config.hops
    if not proofs:
        return False
    wanted = await node.store.read(lambda c: replication.in_scope(c, me, hops))
    verified = []
    left = False
    for raw in proofs:
        author = _author_of(raw)
        if author is None or author not in wanted:
            continue  # the peer's scope is not ours: not our business, not its fault
        if len(verified) >= FORKS_PER_ROUND:
            left = True
            break
        try:
            verified.append(decode_fork_proof(raw))
        except ProtocolError as exc:
            link.reject(1, f"fork proof: {exc.detail}")
            continue
        wanted.discard(author)
    if not verified:
        return left
    taken = await node.store.write(lambda c: replication.take_forks(
        node.store.ledger, c, verified, me, hops, FORKS_PER_ROUND))
    for proof in taken:
        log.warning(json.dumps({"event": "fork", "detail": proof.describe()}))
    return left


async def payloads(gossip: Any, link: PeerLink, theirs: dict[bytes, Head]) -> int:
    """Ask the peer for payloads we lack of entries it advertises; store those that match
    their headers. Returns how many were stored."""
    node = gossip.node
    now = time.monotonic()
    for key in [k for k, t in link.asked.items() if now - t > PAYLOAD_RETRY_S]:
        del link.asked[key]
    skip = set(link.asked)
    ids = await node.store.read(
        lambda c: replication.missing_ids(c, theirs, MAX_PAYLOAD_IDS, skip))
    if not ids:
        return 0
    link.asked.update(dict.fromkeys(ids, now))
    async with gossip.request(link, "POST", "/payloads", encode_payload_request(ids)) as resp:
        if resp.status == 404:
            return 0  # a node of an older version: it cannot help, which is no fault
        if resp.status != 200:
            raise SyncFailed(http_error("payloads", resp.status,
                                        await resp.content.read(2048)))
        body = await link.read(resp, PAGE_MAX_BYTES, "payloads")
    try:
        frames = decode_frames(body)
    except ProtocolError as exc:
        raise SyncFailed(f"payloads: the peer sent a malformed page ({exc})") from None
    asked = set(ids)
    good = [f for f in frames if sha256(f[0]) in asked]
    stored, refused = await node.store.write(
        lambda c: replication.fill(node.store.ledger, c, good))
    refused += len(frames) - len(good)
    if refused:
        link.reject(refused, "payloads: entries not asked for or payloads that do not "
                    "match their headers")
    link.payloads_in += stored
    return stored
