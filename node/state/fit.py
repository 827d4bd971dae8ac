"""The fit rule: whether one need and one offer can meet (category, window, radius).

The rule itself, without ranking or storage (matching.py), so it reads in one place and
benchmarks can check the indexed candidate search against it.
"""

from __future__ import annotations

import math
from typing import Any

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
