"""A spreadsheet saved as CSV, read the way people write it, into the API's JSON bodies.

Groups keep their offers and needs in LibreOffice, Excel or Google Sheets, in English or
Spanish, with a comma or a semicolon between cells, in UTF-8 (with or without a BOM) or
an old Windows code page, with decimal commas and dates like 23/11/2026 18:00. This
module turns such a file into one API body per row (what `POST /api/v1/offers` takes) and
the problems of each cell in words; csv_import.py checks the bodies with the services'
own rules and posts them. Nothing here touches the database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any

from protocol import units
from protocol.kinds import ACTIONS, URGENCIES

from .csv_columns import IGNORE, CellError, Mapping, plain
from .errors import Invalid
from .values import parse_time, rfc3339
from .values import typed_number as number
from .vocabulary import label_path

MAX_BYTES = 256 * 1024  # about 2,000 typical rows; a form post stays under 1 MiB
MAX_ROWS = 1000
MAX_KEY = 200
KIND_WORDS = {"offer": "offer", "offers": "offer", "oferta": "offer", "ofertas": "offer",
              "ofrecemos": "offer", "surplus": "offer", "need": "need", "needs": "need",
              "necesidad": "need", "necesidades": "need", "necesitamos": "need"}
URGENCY_WORDS = {"baja": "low", "media": "normal", "medium": "normal", "alta": "high",
                 "critica": "critical", "urgente": "critical", **{u: u for u in URGENCIES}}
ACTION_WORDS = {"give": "transfer", "to keep": "transfer", "dar": "transfer",
                "regalo": "transfer", "lend": "lend", "prestar": "lend", "prestamo": "lend",
                "loan": "lend", "service": "deliverService", "servicio": "deliverService",
                "deliverservice": "deliverService", "usar": "use", "uso": "use",
                **{a.lower(): a for a in ACTIONS}}
_QUANTITY = re.compile(r"^([0-9]+(?:[.,][0-9]+)?)\s*(.*)\Z")
_YMD = re.compile(r"^([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})(?:[ T]+(.+))?\Z")
_DMY = re.compile(r"^([0-9]{1,2})[-/.]([0-9]{1,2})[-/.]([0-9]{4})(?:[ T,]+(.+))?\Z")
_HM = re.compile(r"^([0-9]{1,2})[:.h]([0-9]{2})(?::([0-9]{2}))?\s*(am|pm|a\.m\.|p\.m\.)?\Z")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")

@dataclass
class Sheet:
    headers: list[str]
    records: list[list[str]]  # data rows, the header row left out (blank ones kept)
    delimiter: str
    encoding: str
    first: int = 2  # the spreadsheet's number of the first data row


@dataclass
class ParsedRow:
    number: int  # as the spreadsheet numbers it: the header is row 1
    kind: str | None
    key: str | None  # the key column's value, if any
    body: dict[str, Any]
    errors: list[CellError]


def decode(data: bytes) -> tuple[str, str]:
    """Bytes to text: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252 / Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff(text: str) -> str:
    """The separator: whichever of , ; or tab the header line holds most of."""
    first = text.split("\n", 1)[0]
    outside = re.sub(r'"[^"]*"', "", first)
    counts = {d: outside.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read(data: bytes) -> Sheet:
    """Parse a CSV upload; a file too big, empty or not CSV is an `Invalid` saying so."""
    if len(data) > MAX_BYTES:
        raise Invalid("file-too-big", f"the file is {len(data) // 1024} KiB; at most "
                      f"{MAX_BYTES // 1024} KiB ({MAX_ROWS} rows) are read at once: split "
                      "it into smaller files", field="file")
    text, encoding = decode(data)
    if "\x00" in text:
        raise Invalid("not-csv", "this is not a CSV file: save the sheet as CSV (comma "
                      "or semicolon separated) and choose that file", field="file")
    delimiter = sniff(text)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise Invalid("not-csv", f"the file could not be read as CSV ({exc}); save the "
                      "sheet as CSV again and choose that file", field="file") from None
    filled = [i for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not filled:
        raise Invalid("empty-file", "the file is empty: it needs a header row (title, "
                      "category, ...) and one row per offer or need", field="file")
    if len(filled) - 1 > MAX_ROWS:
        raise Invalid("too-many-rows", f"the file has {len(filled) - 1} rows; at most "
                      f"{MAX_ROWS} are read at once: split it into smaller files",
                      field="file")
    top = filled[0]
    headers = [h.strip().lstrip("\ufeff") for h in rows[top]]
    return Sheet(headers, rows[top + 1:], delimiter, encoding, first=top + 2)


def cell(text: str) -> str:
    """A cell as typed, without the quote an export puts before '=' to keep it text."""
    text = text.strip()
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in _FORMULA else text


def row_key(kind: str | None, body: dict[str, Any]) -> str:
    """The key of a row without a key column: a hash of what it says, normalised."""
    canon = json.dumps({"kind": kind, **body}, sort_keys=True, ensure_ascii=False,
                       separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()[:32]


def _clock(text: str) -> time | None:
    m = _HM.match(text.strip().lower())
    if m is None:
        return None
    hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
    if m[4]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m[4].startswith("p") else 0)
    try:
        return time(hour, minute, second)
    except ValueError:
        return None


def moment(text: str, *, end_of_day: bool, zone: tzinfo | None) -> int | None:
    """A date as people write it -> ms, in ``zone`` (None: the node's own). A date
    alone means the end of that day for 'until' and its start for 'from'."""
    try:
        return parse_time(text, "time")  # RFC 3339, as our export writes it
    except Invalid:
        pass
    text = text.strip()
    m = _YMD.match(text)
    if m is not None:
        year, month, day, rest = int(m[1]), int(m[2]), int(m[3]), m[4]
    elif (m := _DMY.match(text)) is not None:
        day, month, year, rest = int(m[1]), int(m[2]), int(m[3]), m[4]
        if month > 12 >= day:  # 11/23/2026: written month first
            day, month = month, day
    else:
        return None
    clock = _clock(rest) if rest else (time(23, 59) if end_of_day else time(0, 0))
    if clock is None:
        return None
    try:
        when = datetime.combine(datetime(year, month, day).date(), clock)
    except ValueError:
        return None
    when = when.replace(tzinfo=zone) if zone is not None else when.astimezone()
    return int(when.timestamp() * 1000)


def category(text: str) -> str:
    """A category path or label -> its path (unknown ones are passed on, so the service
    names the closest known ones)."""
    return label_path(text) or text.strip().strip("/").lower()


def _word(text: str, table: dict[str, str]) -> str | None:
    return table.get(plain(text))


def parse_row(number_: int, cells: list[str], mapping: Mapping, *, default_kind: str | None,
              areas: dict[str, str], zone: tzinfo | None) -> ParsedRow:
    """One record to an API body (without defaults: csv_import.py adds those for a new
    post only, so an update never changes what the sheet does not say)."""
    values: dict[str, str] = {}
    errors: list[CellError] = []
    for index, text in enumerate(cells):
        name = mapping.fields[index] if index < len(mapping.fields) else None
        if name is None:
            if text.strip():
                errors.append(CellError("", "extra-cell", f"this row has more cells than "
                                        f"the header has columns ({text.strip()[:40]!r}); "
                                        "add a header or move the cell"))
            continue
        if name != IGNORE and cell(text):
            values[name] = cell(text)
    body: dict[str, Any] = {}
    kind = default_kind
    if "kind" in values:
        kind = _word(values["kind"], KIND_WORDS)
        if kind is None:
            errors.append(CellError("kind", "unknown-kind", f"{values['kind']!r} is neither "
                                    "an offer nor a need; write 'offer' or 'need' "
                                    "('oferta' or 'necesidad')"))
    elif kind is None:
        errors.append(CellError("kind", "no-kind", "say whether this row is an offer or a "
                                "need: add a column 'kind', or choose one for the whole "
                                "file"))
    for name in ("title", "description", "language"):
        if name in values:
            body[name] = values[name]
    if "category" in values:
        body["category"] = category(values["category"])
    _quantity(values, body, errors)
    for name, key, end in (("from", "available_from", False), ("until", "available_until",
                                                               True)):
        if name in values:
            ms = moment(values[name], end_of_day=end, zone=zone)
            if ms is None:
                errors.append(CellError(name, "bad-date", f"{values[name]!r} is not a date "
                                        "we can read; write it like 23/11/2026, "
                                        "23/11/2026 18:00 or 2026-11-23"))
            else:
                body[key] = rfc3339(ms)
    if "area" in values:
        named = {plain(n): c for n, c in areas.items()}
        text = values["area"]
        if plain(text) in named:
            body["area"] = named[plain(text)]
        elif re.fullmatch(r"[0-9a-f]{15}", text):
            body["area"] = text  # an H3 cell, as an export of another group's gives it
        else:
            known = ", ".join(areas) or "none yet (an admin adds them on the Areas page)"
            errors.append(CellError("area", "unknown-area", f"no area named {text!r}; the "
                                    f"group's areas are: {known}"))
    if "urgency" in values:
        urgency = _word(values["urgency"], URGENCY_WORDS)
        if urgency is None:
            errors.append(CellError("urgency", "bad-urgency", f"{values['urgency']!r} is no "
                                    "urgency; write low, normal, high or critical"))
        elif kind == "need":
            body["urgency"] = urgency
    if "action" in values:
        action = _word(values["action"], ACTION_WORDS)
        if action is None:
            errors.append(CellError("action", "bad-action", f"{values['action']!r} is no "
                                    "action; write transfer, lend, deliverService or use"))
        else:
            body["action"] = action
    if "tags" in values:
        tags = [t.strip() for t in re.split(r"[,;|]", values["tags"]) if t.strip()]
        body["tags"] = list(dict.fromkeys(tags))
    return ParsedRow(number_, kind, values.get("key"), body, errors)


def _quantity(values: dict[str, str], body: dict[str, Any], errors: list[CellError]) -> None:
    """'20 loaves', '2,5 kg' or '20' (with a unit column, or none) -> {value, unit?}."""
    text, unit = values.get("quantity"), values.get("unit")
    if text is None:
        if unit is not None:
            errors.append(CellError("unit", "unit-alone", f"a unit ({unit!r}) without a "
                                    "quantity; give the quantity too, or empty the unit"))
        return
    m = _QUANTITY.match(text)
    value = number(m[1]) if m else None
    if value is None:
        errors.append(CellError("quantity", "bad-quantity", f"{text!r} is not a quantity; "
                                "write a number above zero, with its unit if you like: "
                                "20, 2,5 or 20 loaves"))
        return
    inline = m[2].strip() if m else ""
    quantity: dict[str, Any] = {"value": value}
    unit = unit or inline or None
    if unit is not None:
        known = units.lookup(unit)
        quantity["unit"] = known.code if known is not None else unit
    body["quantity"] = quantity

