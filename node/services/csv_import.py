"""Import offers and needs from a spreadsheet: a preview first, the posts after.

`preview` reads the file (csv_read.py), and checks every row with the very checks the API
makes (listings.payload_from_json, input_checks.checked and its vocabulary, the protocol
schema) without appending anything. `commit` plans again inside the write transaction
(the node may have changed since the preview) and posts with `listings.post` /
`listings.update`, the functions behind `POST /api/v1/offers`, skipping rows with errors.

A re-import never posts a row twice. Each row has a key: the value of its `key` / `id`
column, else a hash of what it says. `import_rows` keeps key -> entry id. The rule:

- a key seen before whose row is a hash: the row did not change, nothing to do ("same");
- a key of a key column seen before (or the id of one of this node's own offers or needs,
  as our export writes it): the fields the row gives that differ from the post are
  changed with an update; empty cells leave a field as it is;
- a withdrawn or erased post is never brought back by a re-import ("skip");
- without a key column a changed row is a new row: its old post stays (withdraw it by
  hand), which is why exports carry an `id` column.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from protocol import ProtocolError
from protocol.kinds import validate_payload

from ..store.ledger import Ledger
from . import areas, csv_read, listings, vocabulary
from .csv_columns import FIELDS, IGNORE, CellError, Mapping, guess
from .errors import ServiceError
from .input_checks import checked, window

POSTING = ("post", "update")
DEFAULTS: dict[str, Any] = {"description": "", "tags": []}
# Service field names -> the sheet's fields, so an error names the column at fault.
SHEET_FIELDS = {"quantity.value": "quantity", "quantity.unit": "unit",
                "available_until": "until", "available_from": "from", "location": "area"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class RowPlan:
    """What importing one row would do: post, update, same, skip, or error."""

    number: int
    kind: str | None
    key: str
    body: dict[str, Any]
    action: str = "error"
    target: str | None = None
    changes: list[str] = field(default_factory=list)
    errors: list[CellError] = field(default_factory=list)
    note: str = ""


@dataclass
class Preview:
    headers: list[str]
    mapping: Mapping
    delimiter: str
    encoding: str
    rows: list[RowPlan]

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def ready(self) -> int:
        """How many rows confirming would post or change."""
        return sum(1 for r in self.rows if r.action in POSTING)


@dataclass(frozen=True)
class Options:
    kind: str | None = None  # the kind of rows without a kind column
    chosen: dict[int, str] = field(default_factory=dict)  # column -> field, as picked
    zone: tzinfo | None = None  # of dates without an offset (None: the node's own)


def preview(conn: sqlite3.Connection, ledger: Ledger, data: bytes, options: Options,
            now: int) -> Preview:
    """What importing ``data`` would do, row by row; appends nothing."""
    sheet = csv_read.read(data)
    mapping = guess(sheet.headers, options.chosen)
    out = Preview(sheet.headers, mapping, sheet.delimiter, sheet.encoding, [])
    if mapping.problems:
        return out  # the page asks for the mapping first
    named = {a.name: a.cell for a in areas.list_areas(conn)}
    vocab = vocabulary.declared(conn, ledger)
    seen: dict[str, int] = {}
    for offset, record in enumerate(sheet.records):
        if not any(c.strip() for c in record):
            continue
        row = csv_read.parse_row(sheet.first + offset, record, mapping,
                                 default_kind=options.kind, areas=named, zone=options.zone)
        key = row.key or csv_read.row_key(row.kind, row.body)
        plan = RowPlan(row.number, row.kind, key, row.body, errors=list(row.errors))
        if len(key) > csv_read.MAX_KEY:
            plan.errors.append(CellError("key", "bad-key", f"the key is longer than "
                                         f"{csv_read.MAX_KEY} characters"))
        elif key in seen:
            plan.errors.append(CellError("key", "duplicate-row", (
                f"the same key ({key}) as row {seen[key]}" if row.key else
                f"the same as row {seen[key]}") + "; remove one of the two rows"))
        seen.setdefault(key, row.number)
        if not plan.errors:
            _plan(conn, ledger, plan, bool(row.key), vocab, now)
        out.rows.append(plan)
    return out


def commit(ledger: Ledger, conn: sqlite3.Connection, data: bytes, options: Options,
           now: int) -> Preview:
    """Post and update what the preview of ``data`` shows now, in one transaction;
    rows with errors are left out. Returns the plan as carried out."""
    done = preview(conn, ledger, data, options, now)
    for plan in done.rows:
        kind = plan.kind or ""
        try:
            if plan.action == "post":
                item = listings.post(ledger, conn, kind, plan.body)
                plan.target = item["id"]
            elif plan.action == "update":
                listings.update(ledger, conn, kind, plan.target or "",
                                {k: plan.body[k] for k in plan.changes})
            else:
                continue
        except (ServiceError, ProtocolError) as exc:  # checked above; kept safe anyway
            plan.action = "error"
            plan.errors.append(_error(exc))
            continue
        conn.execute("INSERT OR REPLACE INTO import_rows (key, kind, entry_id, imported) "
                     "VALUES (?, ?, ?, ?)", (plan.key, kind, plan.target, now))
    return done


# -- one row ------------------------------------------------------------------------------


def _error(exc: ServiceError | ProtocolError) -> CellError:
    if isinstance(exc, ServiceError):
        name = exc.field or ""
        return CellError(SHEET_FIELDS.get(name, name if name in FIELDS else IGNORE),
                         exc.code, exc.detail)
    found = re.match(r"field '([\w.]+)'", exc.detail)  # the protocol's "field 'x' ..."
    name = found.group(1).split(".")[0] if found else ""
    return CellError(SHEET_FIELDS.get(name, name if name in FIELDS else IGNORE), exc.code,
                     exc.detail)


def _existing(conn: sqlite3.Connection, ledger: Ledger, plan: RowPlan
              ) -> tuple[str, sqlite3.Row | None] | None:
    """The post this row's key names (its id, and its listing row if still there)."""
    known = conn.execute("SELECT kind, entry_id FROM import_rows WHERE key = ?",
                         (plan.key,)).fetchone()
    if known is not None:
        if known["kind"] != plan.kind:
            plan.errors.append(CellError("key", "key-taken", f"the key {plan.key} was "
                                         f"imported before as a {known['kind']}; give this "
                                         "row another key"))
            return None
        entry_id = known["entry_id"]
    elif _HEX64.fullmatch(plan.key):
        entry_id = plan.key  # the id column of our own export
    else:
        return None
    row = conn.execute("SELECT * FROM listings WHERE id = ?", (entry_id,)).fetchone()
    if row is None and known is None:
        return None  # another node's id: a new post here
    if row is not None and row["author"] != ledger.identity.node_id:
        plan.action, plan.note = "skip", "another group's post; not imported"
        return None
    return entry_id, row


def _plan(conn: sqlite3.Connection, ledger: Ledger, plan: RowPlan, keyed: bool,
          vocab: vocabulary.Declared, now: int) -> None:
    kind = plan.kind or ""
    try:
        found = _existing(conn, ledger, plan)
        if plan.errors or plan.action == "skip":
            return
        if found is None:
            _plan_new(conn, ledger, plan, kind, now)
            return
        plan.target, row = found
        if row is None or row["withdrawn"]:
            plan.action = "skip"
            plan.note = ("erased" if row is None else "withdrawn") + \
                "; a re-import does not bring it back (give the row a new key to post again)"
        elif not keyed and not _HEX64.fullmatch(plan.key):
            plan.action = "same"  # a hashed row seen before: it did not change
        else:
            _plan_update(conn, ledger, plan, kind, row, vocab, now)
    except (ServiceError, ProtocolError) as exc:
        plan.action = "error"
        plan.errors.append(_error(exc))


def _plan_new(conn: sqlite3.Connection, ledger: Ledger, plan: RowPlan, kind: str,
              now: int) -> None:
    body = {"action": "transfer", **plan.body}
    for name, what in (("title", "say in a few words what it is"),
                       ("category", "give a category, like food/bread or 'Bread and "
                        "baked goods'")):
        if not body.get(name):
            plan.errors.append(CellError(name, f"no-{name}", f"the {name} is empty: {what}"))
    if plan.errors:
        return
    if "quantity" in body:
        body["quantity"] = {"unit": "each", **body["quantity"]}
    content = listings.payload_from_json(kind, body)
    checked(conn, ledger, kind, content, now)
    validate_payload(kind, content)
    plan.body, plan.action = body, "post"
    if isinstance(content.get("quantity"), dict):
        plan.body["quantity"] = {**body["quantity"], "unit": content["quantity"]["unit"]}


def _plan_update(conn: sqlite3.Connection, ledger: Ledger, plan: RowPlan, kind: str,
                 row: sqlite3.Row, vocab: vocabulary.Declared, now: int) -> None:
    current = json.loads(row["fields"])
    body = dict(plan.body)
    if "quantity" in body:
        unit = current.get("quantity", {}).get("unit", "each")
        body["quantity"] = {"unit": unit, **body["quantity"]}
    content = listings.payload_from_json(kind, body)
    if isinstance(content.get("quantity"), dict):
        content["quantity"]["unit"] = vocabulary.unit_code(content["quantity"]["unit"], vocab)
        body["quantity"]["unit"] = content["quantity"]["unit"]
    changes = {k: v for k, v in content.items() if current.get(k, DEFAULTS.get(k)) != v}
    plan.body = body
    if not changes:
        plan.action = "same"
        return
    checked(conn, ledger, kind, changes, now)
    window(kind, {**current, **changes})
    validate_payload("update", {"target": bytes.fromhex(row["id"]), "set": changes})
    plan.action, plan.changes = "update", sorted(changes)
