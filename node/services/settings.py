"""The group's settings an admin edits on the web: name, about, languages, its own
categories and units, and retention.

Where they live: the store's `meta` table (keys ``setting.<name>``, JSON values). A saved
setting overrides aidmesh.toml and the environment for its key, because an admin who has
no shell on the node's machine must be able to change it, and a restart must not undo it.
The app applies the saved settings to the running Config when it starts (node/app.py) and
on each save; what peers need (name, about, languages, categories, units) is published as
a new `profile` entry of this node's log when it changes. Retention stays local.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol import Entry
from protocol.taxonomy import is_category
from protocol.units import UNIT_CODE_RE, lookup

from ..config import Config
from ..store.ledger import Ledger
from .errors import Invalid
from .names import clean_name, language_tag
from .vocabulary import own_profile

PREFIX = "setting."
KEYS = ("name", "about", "languages", "categories", "units", "retention_days")
ABOUT_MAX, RETENTION_MAX = 2000, 3650
_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class Settings:
    name: str
    about: str
    languages: tuple[str, ...]
    categories: tuple[str, ...]
    units: tuple[str, ...]
    retention_days: int


def stored(conn: sqlite3.Connection) -> dict[str, Any]:
    """The saved settings: {key: value} of those an admin saved."""
    out = {}
    for row in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'setting.%'"):
        key = row[0][len(PREFIX):]
        if key in KEYS:
            out[key] = json.loads(row[1])
    return out


def apply(config: Config, saved: Mapping[str, Any]) -> None:
    """Saved settings over the running Config's own (the keys Config knows)."""
    for key in ("name", "categories", "units", "retention_days"):
        if key in saved:
            setattr(config, key, list(saved[key]) if isinstance(saved[key], list)
                    else saved[key])


def current(conn: sqlite3.Connection, ledger: Ledger, config: Config) -> Settings:
    """What the settings page shows: saved values, else the config's and the profile's."""
    saved, profile = stored(conn), own_profile(conn, ledger) or {}
    return Settings(
        name=saved.get("name", config.name),
        about=saved.get("about", profile.get("about", "")),
        languages=tuple(saved.get("languages", profile.get("languages", ()))),
        categories=tuple(saved.get("categories", config.categories)),
        units=tuple(saved.get("units", config.units)),
        retention_days=int(saved.get("retention_days", config.retention_days)))


def _words(text: Any) -> list[str]:
    return [w for w in _SPLIT.split(text if isinstance(text, str) else "") if w]


def _about(text: Any) -> str:
    about = (text if isinstance(text, str) else "").replace("\r\n", "\n").strip()
    if len(about) > ABOUT_MAX:
        raise Invalid("invalid-field", f"about is at most {ABOUT_MAX} characters; shorten it",
                      field="about")
    return about


def _languages(text: Any) -> list[str]:
    out: list[str] = []
    for word in _words(text):
        try:
            tag = language_tag(word)
        except Invalid:
            raise Invalid("invalid-field", f"{word[:40]!r} is not a language code; write "
                          "codes like es, en or pt-BR", field="languages") from None
        if tag and tag not in out:
            out.append(tag)
    if len(out) > 10:
        raise Invalid("invalid-field", "at most 10 languages", field="languages")
    return out


def _categories(text: Any) -> list[str]:
    out: list[str] = []
    for path in _words(text):
        if not is_category(path):
            raise Invalid("invalid-field", f"{path[:60]!r} is not a category like "
                          "food/soup: lowercase words a-z 0-9 -, joined by /, at most 4",
                          field="categories")
        if path not in out:
            out.append(path)
    if len(out) > 100:
        raise Invalid("invalid-field", "at most 100 own categories", field="categories")
    return out


def _units(text: Any) -> list[str]:
    out: list[str] = []
    for code in _words(text):
        known = lookup(code)
        if known is not None:
            raise Invalid("invalid-field", f"{code[:40]!r} is already known as "
                          f"{known.code!r}; add only units the list lacks", field="units")
        if not UNIT_CODE_RE.match(code):
            raise Invalid("invalid-field", f"{code[:40]!r} is not a unit like pallet: "
                          "a-z, 0-9 and -, at most 32", field="units")
        if code not in out:
            out.append(code)
    if len(out) > 50:
        raise Invalid("invalid-field", "at most 50 own units", field="units")
    return out


def _retention(text: Any) -> int:
    try:
        days = int(str(text).strip())
    except ValueError:
        days = 0
    if not 1 <= days <= RETENTION_MAX:
        raise Invalid("invalid-field", f"retention is a whole number of days from 1 to "
                      f"{RETENTION_MAX}", field="retention_days")
    return days


def parse(form: Mapping[str, Any]) -> dict[str, Any]:
    """The settings form (text fields) as checked values; Invalid names the field."""
    return {"name": clean_name(form.get("name", ""), "name", 100),
            "about": _about(form.get("about", "")),
            "languages": _languages(form.get("languages", "")),
            "categories": _categories(form.get("categories", "")),
            "units": _units(form.get("units", "")),
            "retention_days": _retention(form.get("retention_days", ""))}


def save(ledger: Ledger, conn: sqlite3.Connection, config: Config, form: Mapping[str, Any]
         ) -> Entry | None:
    """Check and keep the form's settings, apply them to ``config`` and publish a new
    profile when what peers see changed (its entry, else None). Nothing is kept when a
    field is refused."""
    values = parse(form)
    for key, value in values.items():
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO "
                     "UPDATE SET value = excluded.value", (PREFIX + key, json.dumps(value)))
    entry = publish(ledger, conn, config, values)
    apply(config, values)  # after the append: a refused append leaves config as it was
    return entry


def publish(ledger: Ledger, conn: sqlite3.Connection, config: Config,
            values: Mapping[str, Any] | None = None) -> Entry | None:
    """Append a profile with the settings peers need when the latest one differs (keeps
    the fields this page does not edit, such as the seal key)."""
    values = {**stored(conn), **(values or {})}
    profile = own_profile(conn, ledger)
    wanted = dict(profile) if profile is not None else {
        "seal_key": ledger.identity.seal_public()}
    wanted["name"] = str(values.get("name", config.name))[:100]
    for key, default in (("about", wanted.get("about", "")),
                         ("languages", wanted.get("languages", [])),
                         ("categories", config.categories), ("units", config.units)):
        value = values.get(key, default)
        if value:
            wanted[key] = list(value) if isinstance(value, (list, tuple)) else value
        else:
            wanted.pop(key, None)
    if wanted == profile:
        return None
    return ledger.append_local(conn, "profile", wanted)
