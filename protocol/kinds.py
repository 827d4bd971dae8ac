"""Kinds and their payload schemas.

A payload is a canonical msgpack map. Known kinds are checked field by field; unknown
fields are rejected (a new field comes with a new protocol version), while unknown
*kinds* verify and replicate untouched so old nodes relay what new nodes write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .area import check_area
from .errors import PayloadError
from .taxonomy import MAX_CATEGORY_LEN, is_category
from .units import UNIT_CODE_RE

ACTIONS = ("transfer", "deliverService", "lend", "use")
URGENCIES = ("low", "normal", "high", "critical")
KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}\Z")
DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{0,2}[1-9])?\Z")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}\Z")
# The whitespace a `url` may not contain, as an explicit code-point list (spec §9.1): regex
# engines disagree about `\s`, and two implementations must agree on every signed entry.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
              "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_WS = re.escape(WHITESPACE)
URL_RE = re.compile(rf"^https?://[^/?#{_WS}]+(/[^{_WS}]*)?\Z")
MAX_SEALED = 4096
MAX_TIME_MS = 2**53 - 1

Check = Callable[[Any, str], Any]


def _fail(path: str, what: str) -> PayloadError:
    return PayloadError(f"field {path!r} {what}", code="payload-schema")


def text(min_len: int, max_len: int) -> Check:
    def check(v: Any, path: str) -> Any:
        if not isinstance(v, str):
            raise _fail(path, "must be a string")
        if not min_len <= len(v) <= max_len:
            raise _fail(path, f"must be {min_len} to {max_len} characters")
        return v

    return check


def integer(lo: int, hi: int) -> Check:
    def check(v: Any, path: str) -> Any:
        if not isinstance(v, int) or isinstance(v, bool):
            raise _fail(path, "must be an integer")
        if not lo <= v <= hi:
            raise _fail(path, f"must be between {lo} and {hi}")
        return v

    return check


def binary(size: int | None = None, max_size: int | None = None) -> Check:
    def check(v: Any, path: str) -> Any:
        if not isinstance(v, bytes):
            raise _fail(path, "must be msgpack bin")
        if size is not None and len(v) != size:
            raise _fail(path, f"must be exactly {size} bytes")
        if max_size is not None and len(v) > max_size:
            raise _fail(path, f"must be at most {max_size} bytes")
        return v

    return check


def one_of(*choices: str) -> Check:
    def check(v: Any, path: str) -> Any:
        if v not in choices:
            raise _fail(path, f"must be one of {', '.join(choices)}")
        return v

    return check


def pattern(regex: re.Pattern[str], what: str, max_len: int) -> Check:
    def check(v: Any, path: str) -> Any:
        if not isinstance(v, str) or len(v) > max_len or not regex.match(v):
            raise _fail(path, f"must be {what}")
        return v

    return check


def area(v: Any, path: str) -> Any:
    try:
        return check_area(v)
    except PayloadError as exc:
        raise PayloadError(f"field {path!r}: {exc.detail}", code=exc.code) from None


def category(v: Any, path: str) -> Any:
    if not is_category(v):
        raise _fail(path, "must be a category path like 'food/produce' "
                          f"(lowercase segments, at most 4, {MAX_CATEGORY_LEN} chars)")
    return v


def string_list(max_items: int, item: Check, *, unique: bool = True) -> Check:
    def check(v: Any, path: str) -> Any:
        if not isinstance(v, list):
            raise _fail(path, "must be an array")
        if len(v) > max_items:
            raise _fail(path, f"must have at most {max_items} items")
        for i, x in enumerate(v):
            item(x, f"{path}[{i}]")
        if unique and len(set(v)) != len(v):
            raise _fail(path, "must not repeat items")
        return v

    return check


decimal = pattern(DECIMAL_RE, "a positive decimal string like '2' or '0.5' "
                  "(no exponent, at most 3 decimals, no trailing zeros)", 16)


def positive_decimal(v: Any, path: str) -> Any:
    decimal(v, path)
    if v == "0":
        raise _fail(path, "must be greater than zero")
    return v


def record(fields: Mapping[str, tuple[Check, bool]]) -> Check:
    """A map with exactly the known fields; bool says whether a field is required."""

    def check(v: Any, path: str) -> Any:
        if not isinstance(v, dict):
            raise _fail(path or "payload", "must be a map")
        for key in v:
            if key not in fields:
                raise PayloadError(
                    f"unknown field {_join(path, key)!r}", code="payload-unknown-field"
                )
        for key, (sub, required) in fields.items():
            if key in v:
                sub(v[key], _join(path, key))
            elif required:
                raise PayloadError(
                    f"missing required field {_join(path, key)!r}", code="payload-missing-field"
                )
        return v

    return check


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


quantity = record({"value": (positive_decimal, True), "unit": (text(1, 32), True)})
time_ms = integer(0, MAX_TIME_MS)
entry_ref = binary(32)
node_ref = binary(32)
sealed = binary(max_size=MAX_SEALED)
language = pattern(LANGUAGE_RE, "a BCP 47 language tag like 'en' or 'pt-BR'", 35)

LISTING_FIELDS: dict[str, tuple[Check, bool]] = {
    "title": (text(1, 200), True),
    "description": (text(0, 5000), False),
    "action": (one_of(*ACTIONS), True),
    "category": (category, True),
    "quantity": (quantity, False),
    "area": (area, False),
    "available_from": (time_ms, False),
    "available_until": (time_ms, False),
    "tags": (string_list(20, text(1, 40)), False),
    "language": (language, False),
}
NEED_FIELDS = {
    **LISTING_FIELDS,
    "urgency": (one_of(*URGENCIES), False),
    "radius_km": (integer(0, 1000), False),
}


def _window(check: Check) -> Check:
    def inner(v: Any, path: str) -> Any:
        check(v, path)
        start, end = v.get("available_from"), v.get("available_until")
        if start is not None and end is not None and end < start:
            raise _fail("available_until", "must not be before available_from")
        return v

    return inner


def _claim(v: Any, path: str) -> Any:
    record(CLAIM_FIELDS)(v, path)
    if "for_need" in v and "from_offer" in v:
        raise _fail("from_offer", "must not be given with for_need (a claim draws on at "
                    "most one of its author's listings)")
    return v


CLAIM_FIELDS: dict[str, tuple[Check, bool]] = {
    "target": (entry_ref, True),
    "target_author": (node_ref, True),
    "quantity": (quantity, False),
    "message": (text(0, 1000), False),
    "sealed": (sealed, False),
    # the claimant's own need this claim on an offer fills, or own offer it answers a
    # need from (spec §9.6)
    "for_need": (entry_ref, False),
    "from_offer": (entry_ref, False),
}


def _update(v: Any, path: str) -> Any:
    record({"target": (entry_ref, True), "set": (_update_set, True)})(v, path)
    return v


def _update_set(v: Any, path: str) -> Any:
    if not isinstance(v, dict) or not v:
        raise _fail(path, "must be a non-empty map of changed fields")
    partial = {k: (chk, False) for k, (chk, _) in NEED_FIELDS.items()}
    return _window(record(partial))(v, path)


@dataclass(frozen=True)
class Kind:
    name: str
    check: Check
    summary: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("profile", record({
            "name": (text(1, 100), True),
            "about": (text(0, 2000), False),
            "area": (area, False),
            "languages": (string_list(10, language), False),
            "seal_key": (binary(32), False),
            "categories": (string_list(100, category), False),
            "units": (string_list(50, pattern(UNIT_CODE_RE, "a unit code like 'pallet' "
                                              "(a-z, 0-9, -)", 32)), False),
        }), "who the group is; its X25519 key for sealed fields; its own vocabulary"),
        Kind("offer", _window(record(LISTING_FIELDS)), "surplus the group can share"),
        Kind("need", _window(record(NEED_FIELDS)), "something the group needs"),
        Kind("update", _update, "changes fields of one of the author's offers or needs"),
        Kind("withdraw", record({
            "target": (entry_ref, True),
            "reason": (text(0, 500), False),
        }), "takes one of the author's offers or needs down"),
        Kind("claim", _claim, "asks for (part of) another group's offer, or offers to fill "
             "its need"),
        Kind("accept", record({
            "target": (entry_ref, True),
            "claim": (entry_ref, True),
            "claim_author": (node_ref, True),
            "quantity": (quantity, False),
            "sealed": (sealed, False),
        }), "the target's owner commits a quantity to a claim"),
        Kind("decline", record({
            "target": (entry_ref, True),
            "claim": (entry_ref, True),
            "claim_author": (node_ref, True),
            "reason": (text(0, 500), False),
        }), "the target's owner turns a claim down"),
        Kind("fulfil", record({
            "target": (entry_ref, True),
            "claim": (entry_ref, True),
            "claim_author": (node_ref, True),
            "quantity": (quantity, False),
            "sealed": (sealed, False),
        }), "either side records the hand-over"),
        Kind("trust", record({
            "peer": (node_ref, True),
            "url": (pattern(URL_RE, "an http(s) URL", 2048), True),
        }), "the author peers with a node"),
        Kind("untrust", record({"peer": (node_ref, True)}), "the author stops peering"),
        Kind("redact", record({
            "target": (entry_ref, True),
            "reason": (text(0, 500), False),
        }), "asks every node to erase the payload of one of the author's entries"),
    )
}


def check_kind_name(kind: Any) -> str:
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise PayloadError(
            "kind must be 1-32 chars of a-z 0-9 _ . - starting with a letter", code="bad-kind"
        )
    return kind


def validate_payload(kind: str, content: Any) -> Any:
    """Check a decoded payload against its kind's schema; unknown kinds pass as-is."""
    spec = KINDS.get(kind)
    if spec is None:
        return content
    return spec.check(content, "")
