"""The group's named areas ("Northside" = one coarse H3 cell), so volunteers pick a name
instead of typing a cell, and "use my location" becomes a cell the node keeps instead of
the coordinates.

Coordinates come in, a cell of resolution `AREA_RESOLUTION` comes out, and nothing finer
is ever stored: the cell covers about 5 km², so no one's home is findable from it.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import Any

import h3

from .errors import Conflict, Invalid, NotFound
from .names import clean_name, sort_key

AREA_RESOLUTION = 7  # coarse on purpose: ~5 km², a neighbourhood, never a street
NAME_MAX = 60


@dataclass(frozen=True)
class Area:
    name: str
    cell: str


def _coordinate(value: Any, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise ValueError(value)
    return number


def cell_of(lat: Any, lng: Any) -> str:
    """The coarse cell around a point; the point itself is not kept anywhere."""
    try:
        return h3.latlng_to_cell(_coordinate(lat, 90), _coordinate(lng, 180), AREA_RESOLUTION)
    except (ValueError, OverflowError, h3.H3BaseException):
        raise Invalid("invalid-location", "a location is a latitude from -90 to 90 and a "
                      "longitude from -180 to 180, in decimal degrees (e.g. 40.4168, "
                      "-3.7038)", field="location") from None


def add(conn: sqlite3.Connection, name: str, lat: Any, lng: Any, now: int) -> Area:
    name = clean_name(name, "name", NAME_MAX)
    area = Area(name, cell_of(lat, lng))
    if (taken := by_name(conn, name)) is not None:
        raise Conflict("area-taken", f"an area named {taken.name!r} exists already; choose "
                       "another name or remove that one first", field="name")
    conn.execute("INSERT INTO areas (name, cell, created) VALUES (?, ?, ?)",
                 (area.name, area.cell, now))
    return area


def list_areas(conn: sqlite3.Connection) -> list[Area]:
    rows = conn.execute("SELECT name, cell FROM areas").fetchall()
    return sorted((Area(r["name"], r["cell"]) for r in rows), key=lambda a: sort_key(a.name))


def by_name(conn: sqlite3.Connection, name: str) -> Area | None:
    if not isinstance(name, str):
        return None
    row = conn.execute("SELECT name, cell FROM areas WHERE name = ?",
                       (name.strip(),)).fetchone()
    return Area(row["name"], row["cell"]) if row else None


def remove(conn: sqlite3.Connection, name: str) -> Area:
    """Forget a named area; offers and needs already posted keep their cell."""
    area = by_name(conn, name)
    if area is None:
        raise NotFound("area-unknown", f"no area named {str(name)[:60]!r}; 'aidmesh area "
                       "list' shows the group's areas", field="name")
    conn.execute("DELETE FROM areas WHERE name = ?", (area.name,))
    return area
