"""Offers and needs as the client API sees them, and their payloads on the wire.

JSON names match payload names; only times (RFC 3339 in JSON, ms in payloads) and
quantity values (JSON numbers, decimal strings in payloads) are converted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from protocol.kinds import LISTING_FIELDS, NEED_FIELDS

from .problems import Problem, json_object

TIME_FIELDS = ("available_from", "available_until")


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any, field: str) -> int:
    if not isinstance(value, str):
        raise Problem(422, "invalid-field", f"{field} must be an RFC 3339 time string like "
                      "'2026-11-21T18:00:00Z'", field=field)
    try:
        dt = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise Problem(422, "invalid-field", f"{field} is not an RFC 3339 time: {value[:40]!r}",
                      field=field) from None
    if dt.tzinfo is None:
        raise Problem(422, "invalid-field", f"{field} needs a time zone offset, e.g. 'Z'",
                      field=field)
    return int(dt.timestamp() * 1000)


def decimal_text(value: Any, field: str) -> str:
    """JSON number (or numeric string) to the canonical decimal string of the protocol."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Problem(422, "invalid-field", f"{field} must be a number", field=field)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise Problem(422, "invalid-field", f"{field} must be a number", field=field) from None
    if not d.is_finite():
        raise Problem(422, "invalid-field", f"{field} must be a finite number", field=field)
    if d <= 0:
        raise Problem(422, "invalid-field", f"{field} must be greater than zero", field=field)
    if d != d.quantize(Decimal("0.001")) or d >= Decimal(10) ** 12:
        raise Problem(422, "invalid-field", f"{field} allows at most 3 decimals and 12 digits",
                      field=field)
    text = format(d.normalize(), "f")
    return text


def number(text: str) -> int | float:
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(d)


def payload_from_json(kind: str, body: Any, *, partial: bool = False) -> dict[str, Any]:
    """Convert and type-check client JSON; the protocol schema does the rest."""
    body = json_object(body, NEED_FIELDS if kind == "need" else LISTING_FIELDS)
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in TIME_FIELDS:
            value = parse_time(value, key)
        elif key == "quantity":
            if not isinstance(value, dict) or set(value) - {"value", "unit"}:
                raise Problem(422, "invalid-field", "quantity is {\"value\": number, "
                              "\"unit\": string}", field="quantity")
            if "value" not in value or "unit" not in value:
                raise Problem(422, "invalid-field", "quantity needs both value and unit",
                              field="quantity")
            value = {"value": decimal_text(value["value"], "quantity.value"),
                     "unit": value["unit"]}
        out[key] = value
    if partial and not out:
        raise Problem(422, "invalid-body", "send at least one field to change")
    return out


def to_json(row: Any, now: int) -> dict[str, Any]:
    """A projection row as the API shows it."""
    fields = json.loads(row["fields"])
    out: dict[str, Any] = {"id": row["id"], "kind": row["kind"], "origin": row["author"]}
    for key, value in fields.items():
        if key in TIME_FIELDS:
            out[key] = rfc3339(value)
        elif key == "quantity":
            out[key] = {"value": number(value["value"]), "unit": value["unit"]}
        else:
            out[key] = value
    out.setdefault("description", "")
    out.setdefault("tags", [])
    if "quantity" in fields and "committed" in row.keys():
        unit = fields["quantity"]["unit"]
        left = max(Decimal(0), Decimal(fields["quantity"]["value"]) - Decimal(row["committed"]))
        out["available_quantity"] = {"value": number(str(left)), "unit": unit}
        out["committed_quantity"] = {"value": number(row["committed"]), "unit": unit}
    out["status"] = status(row, now)
    out["created"] = rfc3339(row["created"])
    out["updated"] = rfc3339(row["updated"])
    return out


def status(row: Any, now: int) -> str:
    """open -> partly-committed -> committed -> fulfilled; withdrawn; expired (spec §9.6)."""
    if row["withdrawn"]:
        return "withdrawn"
    if row["available_until"] is not None and row["available_until"] < now:
        return "expired"
    keys = row.keys()
    committed = Decimal(row["committed"]) if "committed" in keys else Decimal(0)
    if not committed:
        return "open"
    capacity = Decimal(row["quantity"]) if row["quantity"] else Decimal(1)
    if committed < capacity:
        return "partly-committed"
    if Decimal(row["fulfilled"]) >= committed:
        return "fulfilled"
    return "committed"
