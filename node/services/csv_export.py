"""Offers, needs, claims and hand-overs as CSV that LibreOffice and Excel open cleanly.

UTF-8 (a BOM on request: Excel on Windows needs it to see accents), one header row, a
comma (or a semicolon, which Excel expects in comma-decimal countries), times in ISO 8601
UTC, quantities split into a value column and a unit column. A text that starts with
= + - @ gets a leading ' so no spreadsheet runs it as a formula (the import takes it off).
Offers and needs carry their `id`, so the file imported again posts nothing new and an
edited row updates its post (csv_import.py). Private details (sealed addresses, phones)
are never written: a CSV file travels further than anyone plans.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..state import visibility
from ..store.ledger import Ledger
from . import areas, claims, listings, overview
from .errors import BadParameter
from .pages import decode_cursor

WHAT = ("offers", "needs", "claims", "handovers")
SCOPES = ("ours", "all")
DELIMITERS = {"comma": ",", "semicolon": ";", ",": ",", ";": ";"}
LISTING_COLUMNS = ("id", "kind", "title", "category", "quantity", "unit", "action",
                   "available_from", "available_until", "area", "urgency", "tags",
                   "description", "language", "status", "available_quantity",
                   "committed_quantity", "origin", "group", "created", "updated")
CLAIM_COLUMNS = ("id", "direction", "status", "listing_id", "listing_kind", "listing_title",
                 "quantity", "unit", "committed_quantity", "committed_unit", "claimant",
                 "claimant_group", "owner", "owner_group", "for_need", "from_offer",
                 "message", "created", "updated")
HANDOVER_COLUMNS = ("claim_id", "listing_id", "listing_kind", "listing_title",
                    "quantity", "unit", "recorded_by", "recorded_by_group", "at")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def iso(value: str | int | None) -> str:
    """An RFC 3339 time (or ms) as ISO 8601 UTC, without milliseconds when they are 0."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    moment = datetime.fromtimestamp(value / 1000, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{value % 1000:03d}Z" if value % 1000 else f"{text}Z"


def _safe(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _write(columns: Iterable[str], rows: Iterable[dict[str, Any]], bom: bool,
           delimiter: str) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    columns = list(columns)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_safe(row.get(c)) for c in columns])
    return out.getvalue().encode("utf-8-sig" if bom else "utf-8")


def export(conn: sqlite3.Connection, ledger: Ledger, what: str, now: int, *,
           bom: bool = False, delimiter: str = ",", scope: str = "ours") -> bytes:
    """One CSV file of ``what`` (offers, needs, claims, handovers); ``scope``: this
    group's own offers and needs, or all this node shows."""
    if what not in WHAT:
        raise BadParameter("invalid-parameter", f"export one of {', '.join(WHAT)}",
                           field="what")
    if scope not in SCOPES:
        raise BadParameter("invalid-parameter", "scope is 'ours' or 'all'", field="scope")
    if delimiter not in DELIMITERS:
        raise BadParameter("invalid-parameter", "the separator is a comma or a semicolon",
                           field="delimiter")
    sep = DELIMITERS[delimiter]
    names = overview.group_names(conn)
    if what in ("offers", "needs"):
        rows = listing_rows(conn, ledger, what[:-1], now, scope, names)
        return _write(LISTING_COLUMNS, rows, bom, sep)
    items = all_claims(conn, ledger)
    titles = overview.titles(conn, [i["target"] for i in items])
    if what == "claims":
        return _write(CLAIM_COLUMNS, claim_rows(ledger, items, titles, names), bom, sep)
    return _write(HANDOVER_COLUMNS, handover_rows(items, titles, names), bom, sep)


def listing_rows(conn: sqlite3.Connection, ledger: Ledger, kind: str, now: int, scope: str,
                 names: dict[str, str]) -> list[dict[str, Any]]:
    where = "l.author = ?" if scope == "ours" else visibility.listing_visible("l")
    params = (kind, ledger.identity.node_id) if scope == "ours" else (kind,)
    named = {a.cell: a.name for a in areas.list_areas(conn)}
    out = []
    for row in conn.execute(f"SELECT l.* FROM listings l WHERE l.kind = ? AND {where} "
                            "ORDER BY l.created, l.id", params):
        item = listings.to_json(row, now)
        quantity = item.get("quantity") or {}
        out.append({
            **{k: item.get(k) for k in ("id", "kind", "title", "category", "action",
                                        "urgency", "description", "language", "status",
                                        "origin")},
            "quantity": quantity.get("value"), "unit": quantity.get("unit"),
            "available_from": iso(item.get("available_from")),
            "available_until": iso(item.get("available_until")),
            "area": named.get(item.get("area", ""), item.get("area")),
            "tags": ", ".join(item.get("tags", [])),
            "available_quantity": (item.get("available_quantity") or {}).get("value"),
            "committed_quantity": (item.get("committed_quantity") or {}).get("value"),
            "group": names.get(item["origin"], ""),
            "created": iso(item["created"]), "updated": iso(item["updated"])})
    return out


def all_claims(conn: sqlite3.Connection, ledger: Ledger) -> list[dict[str, Any]]:
    """Every claim this node shows, oldest first, without private details."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, token = claims.list_claims(conn, ledger, limit=500, cursor=cursor)
        out += page
        if token is None:
            return out[::-1]
        cursor = tuple(decode_cursor(token, (int, str)))


def claim_rows(ledger: Ledger, items: list[dict[str, Any]], titles: dict[str, str],
               names: dict[str, str]) -> Iterable[dict[str, Any]]:
    me = ledger.identity.node_id
    for item in items:
        quantity = item.get("quantity") or {}
        committed = item.get("committed_quantity") or {}
        yield {
            "id": item["id"], "direction": "incoming" if item["owner"] == me else "outgoing",
            "status": item["status"], "listing_id": item["target"],
            "listing_kind": item["target_kind"], "listing_title": titles.get(item["target"]),
            "quantity": quantity.get("value"), "unit": quantity.get("unit"),
            "committed_quantity": committed.get("value"), "committed_unit": committed.get("unit"),
            "claimant": item["claimant"], "claimant_group": names.get(item["claimant"], ""),
            "owner": item["owner"], "owner_group": names.get(item["owner"], ""),
            "for_need": item.get("for_need"), "from_offer": item.get("from_offer"),
            "message": item.get("message"), "created": iso(item["created"]),
            "updated": iso(item["updated"])}


def handover_rows(items: list[dict[str, Any]], titles: dict[str, str],
                  names: dict[str, str]) -> Iterable[dict[str, Any]]:
    """One row per recorded hand-over (a fulfil, by either side)."""
    for item in items:
        committed = item.get("committed_quantity") or item.get("quantity") or {}
        for response in item["responses"]:
            if response["kind"] != "fulfil":
                continue
            yield {"claim_id": item["id"], "listing_id": item["target"],
                   "listing_kind": item["target_kind"],
                   "listing_title": titles.get(item["target"]),
                   "quantity": committed.get("value"), "unit": committed.get("unit"),
                   "recorded_by": response["by"],
                   "recorded_by_group": names.get(response["by"], ""),
                   "at": iso(response["at"])}


def file_name(what: str, node_name: str, now: int) -> str:
    """e.g. corner-bakery-offers-2026-11-23.csv (ASCII only: a safe download name)."""
    stem = "".join(c if c.isascii() and c.isalnum() else "-" for c in node_name.lower())
    stem = "-".join(p for p in stem.split("-") if p)[:40] or "aidmesh"
    day = datetime.fromtimestamp(now / 1000, UTC).strftime("%Y-%m-%d")
    return f"{stem}-{what}-{day}.csv"

