"""Matches: needs and offers that fit each other, both still live, best first."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from protocol import ProtocolError, units
from protocol.identity import parse_entry_id

from ..state import visibility
from ..state.exchange import text, unit
from ..state.fit import fits
from ..state.visibility import listing_visible
from ..store.ledger import Ledger
from . import claims
from .errors import BadParameter, Invalid, NotFound
from .fills import left
from .listings import parse_origin, to_json
from .pages import decode_cursor, encode_cursor
from .values import json_object, number

URGENCY_RANK = {"critical": 4, "high": 3, "normal": 2, "low": 1}
MATCH_PARAMS = frozenset({"need", "offer", "origin", "local_only", "limit", "cursor"})


def _listing(conn: sqlite3.Connection, listing_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()


def _live(alias: str) -> str:
    return (f"{alias}.withdrawn = 0 AND {listing_visible(alias)} AND "
            f"({alias}.available_until IS NULL OR {alias}.available_until >= :now) AND "
            f"{alias}.available > 0")


def match_score(need: sqlite3.Row, distance: float | None) -> float:
    """Urgency weight (critical 1 … low 0.25) times closeness 1 / (1 + km / 10)."""
    weight = URGENCY_RANK.get(need["urgency"] or "normal", 2) / 4
    closeness = 1 / (1 + (distance if distance is not None else 10.0) / 10)
    return round(weight * closeness, 4)


def list_matches(conn: sqlite3.Connection, me: str, now: int, *, need: str | None = None,
                 offer: str | None = None, origin: str = "all", local_only: bool = False,
                 limit: int = 50, offset: int = 0
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """Matches whose need and offer are both live, best first (spec: distance, urgency,
    freshness)."""
    where = [_live("n"), _live("o")]
    params: dict[str, Any] = {"now": now, "limit": limit + 1, "offset": offset, "me": me}
    if need is not None:
        where.append("m.need = :need")
        params["need"] = need
    if offer is not None:
        where.append("m.offer = :offer")
        params["offer"] = offer
    if local_only or origin == "local":
        where.append("(n.author = :me OR o.author = :me)")
    elif origin != "all":
        where.append("(n.author = :origin OR o.author = :origin)")
        params["origin"] = origin
    rows = conn.execute(
        "SELECT m.need, m.offer, m.distance_km FROM matches m "
        "JOIN listings n ON n.id = m.need JOIN listings o ON o.id = m.offer "
        f"WHERE {' AND '.join(where)} ORDER BY {_ORDER} LIMIT :limit OFFSET :offset",
        params).fetchall()
    more = len(rows) > limit
    out = [_match(conn, r, now) for r in rows[:limit]]
    return out, encode_cursor([offset + limit]) if more else None


_ORDER = ("m.distance_km IS NULL, m.distance_km, CASE coalesce(n.urgency, 'normal') "
          + " ".join(f"WHEN '{u}' THEN {r}" for u, r in URGENCY_RANK.items())
          + " ELSE 2 END DESC, max(n.updated, o.updated) DESC, m.need, m.offer")


def _match(conn: sqlite3.Connection, r: sqlite3.Row, now: int) -> dict[str, Any]:
    n, o = _listing(conn, r["need"]), _listing(conn, r["offer"])
    distance = None if r["distance_km"] is None else round(r["distance_km"], 3)
    return {"need": to_json(n, now), "offer": to_json(o, now), "distance_km": distance,
            "score": match_score(n, r["distance_km"]), "covers": covers(n, o)}


def best_for(conn: sqlite3.Connection, now: int, side: str, ids: list[str],
             per: int = 3) -> dict[str, list[dict[str, Any]]]:
    """The best ``per`` live matches of each of several needs (side 'need') or offers
    (side 'offer'), in one query: a page showing many listings asks once, not per row."""
    assert side in ("need", "offer")
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    live = " AND ".join((_live("n"), _live("o"))).replace(":now", "?")
    rows = conn.execute(
        "SELECT need, offer, distance_km FROM (SELECT m.need, m.offer, m.distance_km, "
        f"row_number() OVER (PARTITION BY m.{side} ORDER BY {_ORDER}) AS rank "
        "FROM matches m JOIN listings n ON n.id = m.need JOIN listings o ON o.id = m.offer "
        f"WHERE m.{side} IN ({marks}) AND {live}) WHERE rank <= ?",
        [*ids, now, now, per]).fetchall()
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in rows:
        out[r[side]].append(_match(conn, r, now))
    return out


def covers(need: sqlite3.Row, offer: sqlite3.Row) -> dict[str, Any] | None:
    """How much of the need the offer can still cover, in the need's unit (None when
    either has no quantity): quantities are compared after conversion (spec §9.7)."""
    wanted, offered = unit(need), unit(offer)
    if wanted is None or offered is None:
        return None
    there = units.convert(left(offer), offered, wanted)
    if there is None:
        return None
    return {"value": number(text(min(left(need), there))), "unit": wanted}


MATCH_CLAIM_FIELDS = ("need", "offer", "quantity", "message", "private")


def match_claim_body(body: Any) -> dict[str, Any]:
    """Check the JSON of a claim made from a match, before the write transaction."""
    body = json_object(body, MATCH_CLAIM_FIELDS, required=("need", "offer"))
    for key in ("need", "offer"):
        try:
            parse_entry_id(body[key] if isinstance(body[key], str) else "")
        except ProtocolError:
            raise Invalid("invalid-field", f"{key} is a listing id (64 hex)",
                          field=key) from None
    rest = {k: body[k] for k in ("quantity", "message", "private") if k in body}
    return {"need": body["need"], "offer": body["offer"], "claim": claims.claim_body(rest)}


def claim_match(ledger: Ledger, conn: sqlite3.Connection, body: dict[str, Any], now: int):
    """One call from a match to a claim: on the other group's offer for our need
    (`for_need`), or on its need from our offer (`from_offer`)."""
    rows = {}
    for kind in ("need", "offer"):
        rows[kind] = visibility.listing(conn, body[kind], kind)
        if rows[kind] is None:
            raise NotFound("not-found", f"no {kind} with id {body[kind]} on this node",
                           field=kind)
    need, offer = rows["need"], rows["offer"]
    me = ledger.identity.node_id
    if need["author"] == me and offer["author"] == me:
        raise Invalid("own-listing", "the need and the offer are both this node's; claims "
                      "are for other groups' offers and needs")
    if me not in (need["author"], offer["author"]):
        raise Invalid("not-a-party", "neither the need nor the offer is this node's; claim "
                      "the one you want with POST /api/v1/offers/{id}/claims or "
                      "/api/v1/needs/{id}/claims")
    if not fits(need, offer)[0]:
        raise Invalid("no-match", "this need and this offer do not fit each other "
                      "(category, units, time window or distance)")
    ours_need = need["author"] == me
    target, link = (offer, ("for_need", need["id"])) if ours_need else \
        (need, ("from_offer", offer["id"]))
    return claims.make_claim(ledger, conn, target["kind"], target["id"],
                             {**body["claim"], "link": link}, now)


def match_filters(q: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters of a match list to `list_matches` keywords (limit aside)."""
    for key in q:
        if key not in MATCH_PARAMS:
            raise BadParameter("unknown-parameter", f"unknown query parameter {key!r}; "
                               f"allowed: {', '.join(sorted(MATCH_PARAMS))}", field=key)
    out: dict[str, Any] = {}
    for key in ("need", "offer"):
        out[key] = q.get(key)
        if out[key] is not None:
            try:
                parse_entry_id(out[key])
            except ProtocolError:
                raise BadParameter("invalid-parameter", f"{key} is a listing id (64 hex)",
                                   field=key) from None
    out["origin"] = parse_origin(q.get("origin", "all"))
    local_only = q.get("local_only", "false")
    if local_only not in ("true", "false"):
        raise BadParameter("invalid-parameter", "local_only is true or false",
                           field="local_only")
    out["local_only"] = local_only == "true"
    out["offset"] = max(0, decode_cursor(q["cursor"], (int,))[0]) if "cursor" in q else 0
    return out
