"""The fit rule: whether one need and one offer can meet (category, units, window,
radius).

The rule itself, without ranking or storage (matching.py), so it reads in one place and
benchmarks can check the indexed candidate search against it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from protocol import units
from protocol.taxonomy import category_matches

from ..store.db import dist_km

DEFAULT_RADIUS_KM = 10
NO_END = 2**53


def fits(need: Any, offer: Any) -> tuple[bool, float | None]:
    """The fit rule on two listing rows (mappings): (fits, distance in km or None)."""
    if need["author"] == offer["author"]:
        return False, None
    if not category_matches(need["category"], offer["category"]):
        return False, None
    if _counted(need) and _counted(offer) and not units.compatible(unit_of(need),
                                                                    unit_of(offer)):
        return False, None
    start = max(need["available_from"] or 0, offer["available_from"] or 0)
    end = min(need["available_until"] or NO_END, offer["available_until"] or NO_END)
    if start > end:
        return False, None
    distance = None
    if need["lat"] is not None and offer["lat"] is not None:
        distance = dist_km(need["lat"], need["lng"], offer["lat"], offer["lng"])
        radius = need["radius_km"] if need["radius_km"] is not None else DEFAULT_RADIUS_KM
        if distance > radius:
            return False, None
    return True, distance


def _counted(row: Any) -> bool:
    """Whether a listing (row or mapping, maybe without that column) has a quantity."""
    try:
        return bool(row["quantity"])
    except (KeyError, IndexError):
        return False


def unit_of(row: Any) -> str:
    """The unit of a listing row that has a quantity (from its fields)."""
    return json.loads(row["fields"])["quantity"]["unit"]


UNIT_SQL = "json_extract({0}.fields, '$.quantity.unit')"


def unit_clause(me: Any, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """SQL predicate (and parameters) on candidate rows ``alias``: the units of `fits`.

    A listing without a quantity fits any unit. A known unit meets every spelling of the
    units with its base, compared as `units.key` does (outer spaces, ASCII case: SQLite's
    trim and lower); an unknown one meets only the identical string.
    """
    if not me["quantity"]:
        return "", {}
    mine = unit_of(me)
    known = units.lookup(mine)
    column = UNIT_SQL.format(alias)
    if known is None:
        return f"({alias}.quantity IS NULL OR {column} = :unit)", {"unit": mine}
    names = units.spellings(known.base)
    params = {f"u{i}": name for i, name in enumerate(names)}
    marks = ", ".join(f":{k}" for k in params)
    return (f"({alias}.quantity IS NULL OR {column} = :unit OR lower(trim({column})) "
            f"IN ({marks}))", {"unit": mine, **params})


def box(lat: float, lng: float, radius_km: float) -> dict[str, float]:
    """Latitude (and, away from the poles and the antimeridian, longitude) bounds."""
    dlat = radius_km / 110.0 + 0.01
    box = {"lat0": lat - dlat, "lat1": lat + dlat}
    if abs(lat) + dlat < 89:
        dlng = dlat / math.cos(math.radians(abs(lat) + dlat))
        if -180 <= lng - dlng and lng + dlng <= 180:
            box.update(lng0=lng - dlng, lng1=lng + dlng)
    return box


def prefixes(category: str) -> list[str]:
    parts = category.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
