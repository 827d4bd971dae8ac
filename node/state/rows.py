"""A listing's row from its fields: shared by the fold (projection.py) and erasure.py."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import h3

from .events import emit

LISTING_KINDS = ("offer", "need")


def _center(area: str | None) -> tuple[float | None, float | None]:
    if not area:
        return None, None
    lat, lng = h3.cell_to_latlng(area)
    return lat, lng


def columns(fields: dict[str, Any]) -> dict[str, Any]:
    lat, lng = _center(fields.get("area"))
    return {
        "title": fields["title"],
        "description": fields.get("description", ""),
        "tags": " ".join(fields.get("tags", [])),
        "category": fields["category"],
        "area": fields.get("area"),
        "lat": lat,
        "lng": lng,
        "available_from": fields.get("available_from"),
        "available_until": fields.get("available_until"),
        "quantity": fields["quantity"]["value"] if "quantity" in fields else None,
        "urgency": fields.get("urgency"),
        "radius_km": fields.get("radius_km"),
        "fields": json.dumps(fields, sort_keys=True, separators=(",", ":")),
    }


def updated_fields(kind: str, fields: dict[str, Any], changes: dict[str, Any]
                   ) -> dict[str, Any]:
    """A listing's fields after an `update` sets ``changes`` (offers have no urgency)."""
    out = {**fields, **changes}
    if kind == "offer":
        out.pop("urgency", None)
        out.pop("radius_km", None)
    return out


def listing_event(conn: sqlite3.Connection, listing_id: str, change: str,
                  row: Any = None) -> None:
    if row is None:
        row = conn.execute("SELECT kind, author FROM listings WHERE id = ?",
                           (listing_id,)).fetchone()
    if row is not None:
        emit(conn, "listing", {"id": listing_id, "kind": row["kind"], "origin": row["author"],
                               "change": change})
