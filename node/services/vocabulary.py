"""The vocabularies a node writes with: units (spec §9.7) and categories (§11).

The starter lists are protocol data. A group adds its own in its settings (config
`categories`, `units`); they are published in its `profile`, so peers can show them, and
what this node accepts on input is the starter lists plus what its latest profile
declares: the API, the CLI and the web app check against the same thing. Input is
normalised (`loaves` -> `loaf`); anything unknown is a 422 naming the closest known
entries, because a typo would otherwise never match anything.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from dataclasses import dataclass
from typing import Any

from protocol import ProtocolError, decode, units
from protocol.identity import node_id
from protocol.taxonomy import LABELS, LANGUAGES, closest_categories, is_category

from ..config import Config
from ..store.ledger import Ledger
from .errors import Invalid

LATEST_PROFILES = (
    "SELECT e.author, e.payload FROM entries e JOIN (SELECT author, max(seq) AS seq FROM "
    "entries WHERE kind = 'profile' AND payload IS NOT NULL GROUP BY author) p "
    "ON e.author = p.author AND e.seq = p.seq")


@dataclass(frozen=True)
class Declared:
    """A group's own categories and units, as its profile publishes them."""

    categories: tuple[str, ...] = ()
    units: tuple[str, ...] = ()


def _content(payload: bytes | None) -> dict[str, Any] | None:
    try:
        content = decode(payload) if payload is not None else None
    except ProtocolError:
        return None
    return content if isinstance(content, dict) else None


def own_profile(conn: sqlite3.Connection, ledger: Ledger) -> dict[str, Any] | None:
    row = conn.execute("SELECT payload FROM entries WHERE author = ? AND kind = 'profile' "
                       "AND payload IS NOT NULL ORDER BY seq DESC LIMIT 1",
                       (ledger.identity.public,)).fetchone()
    return _content(row["payload"]) if row is not None else None


def declared(conn: sqlite3.Connection, ledger: Ledger) -> Declared:
    profile = own_profile(conn, ledger) or {}
    return Declared(tuple(profile.get("categories", ())), tuple(profile.get("units", ())))


def publish(ledger: Ledger, conn: sqlite3.Connection, config: Config):
    """Append a profile carrying the settings' categories and units when the latest
    profile says otherwise (None when it already agrees)."""
    current = own_profile(conn, ledger)
    base = current if current is not None else {
        "name": config.name[:100], "seal_key": ledger.identity.seal_public()}
    wanted = {k: v for k, v in base.items() if k not in ("categories", "units")}
    if config.categories:
        wanted["categories"] = list(config.categories)
    if config.units:
        wanted["units"] = list(config.units)
    if wanted == current:
        return None
    return ledger.append_local(conn, "profile", wanted)


# -- checks on input ----------------------------------------------------------------------


def _plain(text: str) -> str:
    """Accents folded for input only ('ración' finds 'racion'); the fold never does this."""
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


def label_path(text: str, extra: tuple[str, ...] | list[str] = ()) -> str | None:
    """A category as people write it — its path or its label in any language, whatever
    the case and accents ('Pan y bolleria') — to its path; None when unknown."""
    def fold(value: str) -> str:
        return " ".join(_plain(value).casefold().split())

    wanted = fold(text)
    for path, labels in LABELS.items():
        if wanted in (path, *(fold(label) for label in labels)):
            return path
    wanted = wanted.strip("/")
    return wanted if wanted in extra else None


def unit_code(text: Any, vocab: Declared, field: str = "quantity.unit",
              also: str | None = None) -> str:
    """The canonical code of a unit typed by a person or a program; ``also``: one more
    unit accepted as it is (a remote listing's own, perhaps unknown, unit)."""
    if not isinstance(text, str) or not 1 <= len(text) <= 32:
        raise Invalid("invalid-field", f"{field} is a unit of 1 to 32 characters, e.g. "
                      "'kg' or 'loaf'", field=field)
    if also is not None and text == also:
        return text
    unit = units.lookup(text) or units.lookup(_plain(text))
    if unit is not None:
        return unit.code
    if text.strip() in vocab.units:
        return text.strip()
    near = units.closest(_plain(text), vocab.units)
    hint = f"did you mean {' or '.join(repr(u) for u in near)}? " if near else ""
    raise Invalid("unknown-unit", f"unknown unit {text!r}; {hint}GET /api/v1/units (or "
                  "'aidmesh units') lists the known ones; a group can declare its own in "
                  "its settings (units = [...])", field=field, suggestions=near)


def check_category(conn: sqlite3.Connection, ledger: Ledger, path: Any, vocab: Declared,
                   field: str = "category") -> None:
    """Refuse a well-formed path that is neither a starter category nor one the group
    declared. (A malformed one is left to the protocol schema, which says what is wrong.)"""
    if not is_category(path) or path in LABELS or path in vocab.categories:
        return
    theirs = peer_categories(conn, ledger)
    if path in theirs:
        raise Invalid("unknown-category", f"{path!r} is a category of other groups "
                      f"({', '.join(theirs[path][:3])}); to use it, declare it in this "
                      "group's settings too (categories = [...])", field=field,
                      suggestions=[path])
    near = closest_categories(path, [*LABELS, *vocab.categories, *theirs])
    hint = f"did you mean {' or '.join(repr(c) for c in near)}? " if near else ""
    raise Invalid("unknown-category", f"unknown category {path!r}; {hint}GET "
                  "/api/v1/categories (or 'aidmesh categories') lists them; a group can "
                  "declare its own in its settings (categories = [...])", field=field,
                  suggestions=near)


# -- browsing -----------------------------------------------------------------------------


def _item(path: str, labels: dict[str, str], source: str,
          groups: list[str] | None = None) -> dict[str, Any]:
    parent = path.rpartition("/")[0] or None
    return {"path": path, "parent": parent, "labels": labels, "source": source,
            "groups": groups or []}


def categories(conn: sqlite3.Connection, ledger: Ledger) -> list[dict[str, Any]]:
    """Starter categories, then this group's own, then those other groups declared in
    the profiles this node holds (with who declared them)."""
    out = [_item(p, dict(zip(LANGUAGES, labels, strict=True)), "starter")
           for p, labels in LABELS.items()]
    seen = set(LABELS)
    for path in declared(conn, ledger).categories:
        if path not in seen:
            seen.add(path)
            out.append(_item(path, {}, "group", [ledger.identity.node_id]))
    out += [_item(p, {}, "peer", g) for p, g in sorted(peer_categories(conn, ledger).items())
            if p not in seen]
    return out


def peer_categories(conn: sqlite3.Connection, ledger: Ledger) -> dict[str, list[str]]:
    """Categories other groups declared in the latest profiles this node holds -> who."""
    me = ledger.identity.node_id
    out: dict[str, list[str]] = {}
    for row in conn.execute(LATEST_PROFILES):
        author = node_id(row["author"])
        profile = _content(row["payload"]) or {}
        if author != me and isinstance(profile.get("categories"), list):
            for path in profile["categories"]:
                if isinstance(path, str) and path not in LABELS:
                    out.setdefault(path, []).append(author)
    return {p: sorted(g) for p, g in out.items()}


def unit_list(conn: sqlite3.Connection, ledger: Ledger) -> list[dict[str, Any]]:
    """Every known unit (code, dimension, base, factor, labels, synonyms), then this
    group's declared ones (each its own base: they convert to nothing else)."""
    out = [{"code": u.code, "dimension": u.dimension, "base": u.base,
            "factor": format(u.factor, "f"), "labels": u.labels,
            "synonyms": list(u.synonyms), "source": "starter"} for u in units.UNITS]
    out += [{"code": code, "dimension": "count", "base": code, "factor": "1", "labels": {},
             "synonyms": [], "source": "group"} for code in declared(conn, ledger).units
            if code not in units.BY_CODE]
    return out
