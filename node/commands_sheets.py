"""`aidmesh import FILE.csv` and `aidmesh export offers|needs|claims|handovers`: the
group's spreadsheet in and out, through the same services as the web app's pages.

Import shows the preview first (each row as it would be posted, or its errors) and posts
only when confirmed: `--yes`, or "y" at the prompt on a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .commands import CliError, _read, _write
from .commands import cmd_export as cmd_export_entries
from .config import load_config
from .services import csv_columns, csv_export, csv_import, csv_read, vocabulary
from .store.ledger import now_ms

VERBS = {"post": "post", "update": "update", "same": "already posted", "skip": "skip",
         "error": "error"}


def _describe(plan: csv_import.RowPlan) -> str:
    body = plan.body
    bits = [body.get("category", "")]
    if quantity := body.get("quantity"):
        bits.append(f"{quantity.get('value')} {quantity.get('unit', '')}".strip())
    if body.get("available_until"):
        bits.append(f"until {body['available_until']}")
    details = ", ".join(b for b in bits if b)
    return f"{body.get('title', '?')}" + (f" ({details})" if details else "")


def row_line(plan: csv_import.RowPlan) -> str:
    head = f"row {plan.number:<5} {VERBS[plan.action]:<15} {plan.kind or '?':<6} "
    if plan.errors:
        return head + "; ".join(f"{e.field or 'row'}: {e.detail}" for e in plan.errors)
    extra = f" [changes {', '.join(plan.changes)}]" if plan.changes else ""
    note = f" - {plan.note}" if plan.note else ""
    return head + _describe(plan) + extra + note


def _summary(p: csv_import.Preview, done: bool) -> str:
    verb = ("posted", "updated") if done else ("to post", "to update")
    return (f"{p.count('post')} {verb[0]}, {p.count('update')} {verb[1]}, "
            f"{p.count('same')} already posted, {p.count('skip')} skipped, "
            f"{p.count('error')} with errors (left out)")


def _confirmed(args: argparse.Namespace, ready: int) -> bool:
    if args.yes:
        return True
    rows = "this row" if ready == 1 else f"these {ready} rows"
    if not sys.stdin.isatty():
        print(f"nothing posted yet: run again with --yes to post {rows}")
        return False
    answer = input(f"post {rows} now? [y/N] ").strip().lower()
    return answer in ("y", "yes", "s", "si", "sí")


def cmd_import(args: argparse.Namespace) -> None:
    data = Path(args.file).read_bytes()
    sheet = csv_read.read(data)
    options = csv_import.Options(kind=args.kind,
                                 chosen=csv_columns.by_name(sheet.headers, args.map or []))
    now = now_ms()
    plan = _read(args, lambda ledger, c: csv_import.preview(c, ledger, data, options, now))
    if plan.mapping.problems:
        raise CliError("; ".join(p.detail for p in plan.mapping.problems)
                       + " (--map 'COLUMN=FIELD' chooses)")
    for index in plan.mapping.unknown:
        print(f"column {plan.headers[index]!r} is not recognised and is ignored "
              f"(--map '{plan.headers[index]}=FIELD' to read it)", file=sys.stderr)
    _show(args, plan)
    print(_summary(plan, False), file=sys.stderr if args.json else sys.stdout)
    if not plan.ready or not _confirmed(args, plan.ready):
        return
    config = load_config(args.home)  # the settings' own categories and units count
    done = _write(args, lambda ledger, c: (vocabulary.publish(ledger, c, config),
                                           csv_import.commit(ledger, c, data, options,
                                                             now_ms()))[1])
    if args.json:
        _show(args, done)
    print(_summary(done, True), file=sys.stderr if args.json else sys.stdout)


def _show(args: argparse.Namespace, plan: csv_import.Preview) -> None:
    for row in plan.rows:
        if args.json:
            item: dict[str, Any] = {**asdict(row), "errors": [asdict(e) for e in row.errors]}
            print(json.dumps(item, ensure_ascii=False))
        else:
            print(row_line(row))


def cmd_export(args: argparse.Namespace) -> None:
    if args.what is None:
        cmd_export_entries(args)  # `aidmesh export` alone: every entry as JSON lines
        return
    now = now_ms()
    data = _read(args, lambda ledger, c: csv_export.export(
        c, ledger, args.what, now, bom=args.bom, delimiter=args.delimiter, scope=args.scope))
    if args.output in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    Path(args.output).write_bytes(data)
    print(f"wrote {args.what} to {args.output} ({len(data)} bytes)", file=sys.stderr)
