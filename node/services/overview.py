"""What a coordinator's pages show at once: one read each, composed of the other services.

The web app's pages need several lists together (our needs with the offers that fit them,
claims waiting for an answer, hand-overs); composing them here keeps the web layer a
translation of results to HTML, and gives the benchmark one call per page to time.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from protocol.identity import node_id

from ..state import visibility
from ..state.query import ListingQuery
from ..store.ledger import Ledger
from . import claims, listings, matches
from .vocabulary import LATEST_PROFILES, _content

LIVE = ("open", "partly-committed")


def group_names(conn: sqlite3.Connection) -> dict[str, str]:
    """Node id -> the name its group gives itself in its latest profile."""
    out = {}
    for row in conn.execute(LATEST_PROFILES):
        profile = _content(row["payload"]) or {}
        if isinstance(profile.get("name"), str):
            out[node_id(row["author"])] = profile["name"]
    return out


def titles(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    """Listing id -> title, for the listings this viewer may see."""
    out = {}
    for listing_id in set(ids):
        row = visibility.listing(conn, listing_id)
        if row is not None:
            out[listing_id] = json.loads(row["fields"]).get("title", "")
    return out


def own_listings(conn: sqlite3.Connection, kind: str, now: int, limit: int = 20
                 ) -> list[dict[str, Any]]:
    query = ListingQuery(kind=kind)
    query.origin, query.limit = "local", limit
    items, _cursor = listings.search(conn, query, now)
    return [i for i in items if i["status"] in LIVE]


def today(conn: sqlite3.Connection, ledger: Ledger, now: int) -> dict[str, Any]:
    """Our open needs with the offers that fit each, our open offers with the claims
    waiting on them, outgoing claims still under way, and recent hand-overs."""
    me = ledger.identity.node_id
    needs = own_listings(conn, "need", now)
    fits = matches.best_for(conn, now, "need", [n["id"] for n in needs])
    for need in needs:
        need["fits"] = fits[need["id"]]
    offers = own_listings(conn, "offer", now)
    fits = matches.best_for(conn, now, "offer", [o["id"] for o in offers])
    waiting, _c = claims.list_claims(conn, ledger, direction="incoming", state="pending",
                                     limit=50)
    by_target: dict[str, list[dict[str, Any]]] = {}
    for claim in waiting:
        by_target.setdefault(claim["target"], []).append(claim)
    for offer in offers:
        offer["waiting"] = by_target.get(offer["id"], [])
        offer["fits"] = fits[offer["id"]]
    outgoing, _c = claims.list_claims(conn, ledger, direction="outgoing", limit=20)
    handovers, _c = claims.list_claims(conn, ledger, state="fulfilled", limit=10)
    return {"needs": needs, "offers": offers, "waiting": waiting,
            "outgoing": [c for c in outgoing if c["status"] in ("pending", "accepted")],
            "handovers": handovers, "names": group_names(conn), "me": me}
