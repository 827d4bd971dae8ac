"""Public areas: H3 cell strings of resolution 8 or coarser, never coordinates.

Validated here by the H3 index bit layout (a dozen lines) so ``protocol`` needs no native
H3 dependency; the test suite cross-checks this against the ``h3`` library.
"""

from __future__ import annotations

import re

from .errors import PayloadError

MAX_RESOLUTION = 8
_CELL_RE = re.compile(r"^[0-9a-f]{15}\Z")
_PENTAGON_BASE_CELLS = frozenset({4, 14, 24, 38, 49, 58, 63, 72, 83, 97, 107, 117})
_COORD_RE = re.compile(r"^\s*[-+]?\d+(\.\d+)?\s*[,; ]\s*[-+]?\d+(\.\d+)?\s*\Z")


def cell_resolution(cell: str) -> int:
    """Resolution of a valid H3 cell string; raises PayloadError if it is not one."""
    if not isinstance(cell, str):
        raise PayloadError("an area is an H3 cell string, not coordinates", code="area-not-h3")
    if _COORD_RE.match(cell):
        raise PayloadError(
            "an area must be an H3 cell (resolution <= 8), never coordinates",
            code="area-not-h3",
        )
    if not _CELL_RE.match(cell):
        raise PayloadError(
            f"an area is 15 lowercase hex digits of an H3 cell (got {cell[:40]!r})",
            code="area-not-h3",
        )
    index = int(cell, 16)
    mode = (index >> 59) & 0xF
    reserved = (index >> 56) & 0x7
    res = (index >> 52) & 0xF
    base = (index >> 45) & 0x7F
    if index >> 63 or mode != 1 or reserved or base > 121:
        raise PayloadError(f"{cell!r} is not a valid H3 cell", code="area-not-h3")
    first_nonzero = 0
    for i in range(1, 16):
        digit = (index >> ((15 - i) * 3)) & 0x7
        if i <= res:
            if digit == 7:
                raise PayloadError(f"{cell!r} is not a valid H3 cell", code="area-not-h3")
            if digit and not first_nonzero:
                first_nonzero = digit
        elif digit != 7:
            raise PayloadError(f"{cell!r} is not a valid H3 cell", code="area-not-h3")
    if base in _PENTAGON_BASE_CELLS and first_nonzero == 1:
        raise PayloadError(f"{cell!r} is not a valid H3 cell", code="area-not-h3")
    return res


def check_area(cell: str) -> str:
    res = cell_resolution(cell)
    if res > MAX_RESOLUTION:
        raise PayloadError(
            f"area {cell!r} has H3 resolution {res}; public areas must be resolution "
            f"{MAX_RESOLUTION} or coarser (about 0.7 km2) to protect people's locations",
            code="area-too-precise",
        )
    return cell
