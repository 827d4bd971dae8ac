"""How values look at the edges (JSON, forms, the command line) and in payloads.

Times are RFC 3339 at the edge and ms in payloads; quantities are numbers at the edge and
canonical decimal strings in payloads. Every check raises `Invalid` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import Invalid


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# RFC 3339 date-time, exactly (JSON Schema's "date-time"): Python's fromisoformat alone
# also takes dates without a time, times without seconds, basic formats and non-ASCII digits.
_RFC3339 = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                      r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CYCLE_MS = 146097 * 86_400_000  # 400 Gregorian years
_INTEGER = re.compile(r"^-?[0-9]{1,18}\Z")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?\Z")


def parse_time(value: Any, field: str) -> int:
    """An RFC 3339 time (with its zone offset) to ms since the epoch."""
    if not isinstance(value, str):
        raise Invalid("invalid-field", f"{field} must be an RFC 3339 time string like "
                      "'2026-11-21T18:00:00Z'", field=field)
    m = _RFC3339.match(value)
    try:
        if m is None:
            raise ValueError
        # A leap second (:60) is valid RFC 3339; it is the last ms of its minute here. Year
        # 0000 is too, but not to datetime: it is read as 400, one Gregorian cycle later.
        leap, year_zero = m[6] == "60", m[1] == "0000"
        text = (("0400" if year_zero else m[1]) + value[4:17] + ("59" if leap else m[6])
                + (m[7] or "")[:7] + m[8])
        dt = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        ms = ((dt - EPOCH) // timedelta(milliseconds=1) + (999 if leap and not m[7] else 0)
              - (CYCLE_MS if year_zero else 0))
    except (ValueError, OverflowError):
        raise Invalid("invalid-field", f"{field} is not an RFC 3339 time like "
                      f"'2026-11-21T18:00:00Z': {value[:40]!r}", field=field) from None
    return ms


def strict_int(text: str) -> int | None:
    """A query string integer as written ('-12', '7'), else None (not '+7', ' 7', '٧')."""
    return int(text) if _INTEGER.match(text) else None


def decimal_text(value: Any, field: str) -> str:
    """JSON number (or numeric string) to the canonical decimal string of the protocol."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid("invalid-field", f"{field} must be a number", field=field)
    # Numeric strings as plain digits only: Decimal() itself also takes '1e3', ' 1', '1_000'.
    if isinstance(value, str) and not _DECIMAL.match(value):
        raise Invalid("invalid-field", f"{field} must be a number, or a string of digits "
                      "with an optional '.' and decimals", field=field)
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Invalid("invalid-field", f"{field} must be a number", field=field) from None
    if not d.is_finite():
        raise Invalid("invalid-field", f"{field} must be a finite number", field=field)
    if d <= 0:
        raise Invalid("invalid-field", f"{field} must be greater than zero", field=field)
    # Magnitude first: quantizing 1e25 to 0.001 overflows the decimal context.
    if d >= Decimal(10) ** 12 or d != d.quantize(Decimal("0.001")):
        raise Invalid("invalid-field", f"{field} allows at most 3 decimals and 12 digits",
                      field=field)
    return format(d.normalize(), "f")


def number(text: str) -> int | float:
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(d)


def json_object(body: Any, allowed: Iterable[str], required: Iterable[str] = ()
                ) -> dict[str, Any]:
    """A JSON object with only ``allowed`` fields, none null, and every ``required`` one."""
    if not isinstance(body, dict):
        raise Invalid("invalid-body", "the body must be a JSON object")
    allowed = sorted(allowed)
    for key, value in body.items():
        if key not in allowed:
            raise Invalid("unknown-field", f"unknown field {key!r}; allowed: "
                          f"{', '.join(allowed)}", field=key)
        if value is None:
            raise Invalid("invalid-field", f"{key} must not be null (omit it instead)",
                          field=key)
    for key in required:
        if key not in body:
            raise Invalid("invalid-field", f"{key} is required", field=key)
    return body


def optional_object(body: Any, allowed: Iterable[str]) -> dict[str, Any]:
    """Like `json_object`, for actions whose body may be absent."""
    return {} if body is None else json_object(body, allowed)


def typed_number(text: str) -> str | None:
    """A number as a person types it ('20', '2,5', '1.5', '1 000') -> decimal text; None
    when it is no number above zero. Forms and spreadsheets read quantities with it."""
    text = text.replace(" ", "").replace("\u00a0", "")
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0:
        return None
    return format(value.normalize(), "f")
