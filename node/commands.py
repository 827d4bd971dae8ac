"""What each `aidmesh` command does: call the service, print the result for a person.

Commands write to the data dir directly, one transaction each; a running node notices
the commit within a second and treats it as its own (peers, events, webhooks). Output is
one readable line per item, or one JSON object per line with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from . import __version__
from .config import load_config
from .home import initialise, load_identity
from .services import (
    claims,
    ids,
    listings,
    matches,
    peers,
    people,
    settings,
    status,
    tokens,
    vocabulary,
)
from .services.ledger import open_ledger
from .state.query import ListingQuery
from .store.files import private_dir
from .store.ledger import Ledger, now_ms
from .store.lock import RunLock

T = TypeVar("T")


class CliError(Exception):
    pass


def _ledger(args: argparse.Namespace) -> Ledger:
    config = load_config(args.home)
    if not config.db_path.exists():
        raise CliError(f"no node in {config.home}; run 'aidmesh init' first "
                       "(or pass --home / set AIDMESH_HOME)")
    return open_ledger(config.db_path, load_identity(config), config.max_matches_per_listing)


def _write(args: argparse.Namespace, fn: Callable[[Ledger, sqlite3.Connection], T]) -> T:
    """Run one service action in one transaction of the data dir's database."""
    with _ledger(args) as ledger:
        return ledger.transaction(lambda c: fn(ledger, c))


def _read(args: argparse.Namespace, fn: Callable[[Ledger, sqlite3.Connection], T]) -> T:
    with _ledger(args) as ledger:
        return fn(ledger, ledger.conn)


def _emit(args: argparse.Namespace, items: list[dict[str, Any]],
          line: Callable[[dict[str, Any]], str]) -> None:
    for item in items:
        print(json.dumps(item, ensure_ascii=False) if args.json else line(item))


def _amount(quantity: dict[str, Any] | None) -> str:
    return f"{quantity['value']} {quantity['unit']}" if quantity else "-"


def listing_line(item: dict[str, Any]) -> str:
    qty = item.get("available_quantity") or item.get("quantity")
    return (f"{item['id'][:12]}  {item['status']:<16} {item['category']:<18} "
            f"{_amount(qty):<12} {item['title']}")


# -- node -----------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> None:
    config = load_config(args.home)
    if config.key_path.exists():
        raise CliError(f"{config.home} already holds a node; use it with 'aidmesh run'")
    done = initialise(args.home, name=args.name)
    print(f"data dir:  {done.config.home.resolve()}")
    print(f"node id:   {done.identity.node_id}")
    if link := _write(args, lambda _, c: people.setup_link(c, done.config, now_ms())):
        print(f"Open this link to create the first admin account: {link}")
    print("admin token (shown once; keep it safe):")
    print(done.admin_token)


def cmd_run(args: argparse.Namespace) -> None:
    from .app import create_app
    from .serve import Limits, serve

    config = load_config(args.home)
    private_dir(config.home)
    lock = RunLock(config.home)
    lock.acquire()  # before anything touches the data dir a running node may hold
    done = initialise(args.home)
    config = done.config
    if args.host:
        config.host = args.host
    if args.port:
        config.port = args.port
    logging.basicConfig(level=config.log_level.upper(), format="%(message)s",
                        stream=sys.stderr)
    if done.admin_token:
        print(f"new node in {config.home.resolve()}; admin token (shown once):", flush=True)
        print(done.admin_token, flush=True)
    base = f"http://{config.host}:{config.port}"
    print(f"aidmesh {__version__} node {done.identity.node_id}", flush=True)
    print(f"node URL (give it to peers): {base}", flush=True)
    if link := _write(args, lambda _, c: people.setup_link(c, config, now_ms())):
        print(f"Open this link to create the first admin account: {link}", flush=True)
    app = create_app(config, done.identity, lock=lock)
    asyncio.run(serve(app, config.host, config.port, Limits.of(config), ready=lambda: print(
        f"serving on {base}/api/v1 (Ctrl-C stops)", flush=True)))


def cmd_status(args: argparse.Namespace) -> None:
    config = load_config(args.home)
    with _ledger(args) as ledger:
        c = ledger.conn
        counts, forks = status.counts(c), status.forks(c)
        print(f"node id:  {ledger.identity.node_id}")
        print(f"name:     {config.name}")
        print(f"data dir: {config.home.resolve()}")
        print(f"own log:  {status.own_seq(ledger, c)} entries")
        print(f"store:    {counts['entries']} entries in {counts['logs']} logs; "
              f"{counts['offers']} offers, {counts['needs']} needs")
        print(f"peers:    {status.peer_count(c, ledger.identity.public)} "
              "('aidmesh peer list' for sync progress)")
        lag = status.projector(c)
        print(f"folding:  {lag['lag_entries']} entries not yet searchable" + (
            f" (oldest waiting {lag['lag_seconds']:.1f} s)" if lag["lag_entries"] else ""))
    if forks:
        print(f"FORKS:    {len(forks)} log(s) frozen at a fork:")
        for f in forks:
            print(f"  {f['author']} at seq {f['seq']}")
    else:
        print("forks:    none")


# -- offers and needs -------------------------------------------------------------------------


def _listing_body(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {"title": args.title, "category": args.category,
                            "action": args.action}
    for key in ("description", "area", "available_from", "available_until", "language"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.quantity:
        body["quantity"] = _quantity(args.quantity)
        if not isinstance(body["quantity"], dict):
            raise CliError("--quantity is a number and a unit, e.g. '20 loaves'")
    if args.tag:
        body["tags"] = args.tag
    if kind == "need":
        if args.urgency:
            body["urgency"] = args.urgency
        if args.radius_km is not None:
            body["radius_km"] = args.radius_km
    return body


def _quantity(text: str) -> dict[str, str] | str:
    """'20 loaves' -> {value, unit} (the service normalises the unit); '3' -> '3'."""
    value, _, unit = text.strip().partition(" ")
    return {"value": value, "unit": unit.strip()} if unit.strip() else value


def cmd_listing_add(kind: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        body = _listing_body(args, kind)
        config = load_config(args.home)  # the settings' own categories and units count
        item = _write(args, lambda ledger, c: (settings.publish(ledger, c, config),
                                               listings.post(ledger, c, kind, body))[1])
        _emit(args, [item], lambda i: f"posted {kind} {listing_line(i)}")

    return run


def cmd_listing_list(kind: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        query = ListingQuery(kind=kind, q=args.q, category=args.category, status=args.status,
                             limit=args.limit)
        items, _ = _read(args, lambda ledger, c: listings.search(c, query, now_ms()))
        _emit(args, items, listing_line)

    return run


def cmd_listing_show(kind: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        item = _read(args, lambda ledger, c: listings.get(
            c, kind, ids.resolve(c, args.id, (kind,)), now_ms()))
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
            return
        print(listing_line(item))
        for key in ("description", "area", "available_from", "available_until", "origin"):
            if item.get(key):
                print(f"  {key}: {item[key]}")

    return run


def cmd_listing_withdraw(kind: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        item = _write(args, lambda ledger, c: listings.withdraw(
            ledger, c, kind, ids.resolve(c, args.id, (kind,))))
        _emit(args, [item], lambda i: f"withdrew {kind} {listing_line(i)}")

    return run


# -- claims and matches -------------------------------------------------------------------------


def claim_line(item: dict[str, Any], me: str) -> str:
    side = "in " if item["owner"] == me else "out"
    title = item.get("target_title") or item["target"][:12]
    qty = item["committed_quantity"] or item["quantity"]
    return (f"{item['id'][:12]}  {side} {item['status']:<9} {_amount(qty):<12} "
            f"{title}{'  - ' + item['message'] if item['message'] else ''}")


def _titled(c: sqlite3.Connection, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claims with the title of the listing they are about, for people to read."""
    now = now_ms()
    for item in items:
        if item["target_kind"]:
            item["target_title"] = listings.get(c, item["target_kind"], item["target"],
                                                now)["title"]
    return items


def cmd_claim_list(args: argparse.Namespace) -> None:
    def read(ledger: Ledger, c: sqlite3.Connection) -> tuple[str, list[dict[str, Any]]]:
        items, _ = claims.list_claims(c, ledger, direction=args.direction, state=args.status,
                                      limit=args.limit, show_private=True)
        return ledger.identity.node_id, _titled(c, items)

    me, items = _read(args, read)
    _emit(args, items, lambda i: claim_line(i, me))


def cmd_claim_respond(action: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        raw: dict[str, Any] = {}
        if getattr(args, "quantity", None) is not None:
            raw["quantity"] = _quantity(args.quantity)
        if getattr(args, "reason", None):
            raw["reason"] = args.reason
        body = claims.response_body(action, raw)

        def act(ledger: Ledger, c: sqlite3.Connection) -> dict[str, Any]:
            claim_id = ids.resolve(c, args.id, ("claim",))
            claims.respond(ledger, c, action, claim_id, body, now_ms())
            return _titled(c, [claims.get_claim(c, ledger, claim_id, False)])[0]

        item = _write(args, act)
        me = _read(args, lambda ledger, c: ledger.identity.node_id)
        done = {"accept": "accepted", "decline": "declined", "fulfil": "recorded hand-over of"}
        _emit(args, [item], lambda i: f"{done[action]} claim {claim_line(i, me)}")

    return run


def cmd_match_list(args: argparse.Namespace) -> None:
    items, _ = _read(args, lambda ledger, c: matches.list_matches(
        c, ledger.identity.node_id, now_ms(), local_only=args.local_only, limit=args.limit))

    def line(item: dict[str, Any]) -> str:
        km = "?" if item["distance_km"] is None else f"{item['distance_km']:.1f}"
        return (f"need {item['need']['id'][:12]} <- offer {item['offer']['id'][:12]}  "
                f"{km} km  {item['need']['title']} / {item['offer']['title']}")

    _emit(args, items, line)


def cmd_categories(args: argparse.Namespace) -> None:
    items = _read(args, lambda ledger, c: vocabulary.categories(c, ledger))
    _emit(args, items, lambda i: f"{i['path']:<22} {i['labels'].get(args.lang) or ''}"
          + ("" if i["source"] == "starter" else f"  ({i['source']})"))


def cmd_units(args: argparse.Namespace) -> None:
    items = _read(args, lambda ledger, c: vocabulary.unit_list(c, ledger))
    _emit(args, items, lambda u: f"{u['code']:<7} {u['dimension']:<7} "
          f"{u['factor'] + ' ' + u['base'] if u['base'] != u['code'] else '':<16} "
          f"{u['labels'].get(args.lang, '')}  {' '.join(u['synonyms'][:6])}")


# -- tokens and peers ---------------------------------------------------------------------------


def cmd_token_create(args: argparse.Namespace) -> None:
    token_id, token = _write(args, lambda ledger, c: tokens.create_token(
        c, args.role, args.name, now_ms()))
    print(f"token {token_id} ({args.role}, {args.name!r}); shown once:")
    print(token)


def cmd_token_list(args: argparse.Namespace) -> None:
    items = _read(args, lambda ledger, c: tokens.list_tokens(c))
    _emit(args, items, lambda t: f"{t['id']}  {t['role']:<11} "
          f"{'revoked' if t['revoked'] else 'active':<8} {t['name']}")


def cmd_token_revoke(args: argparse.Namespace) -> None:
    _write(args, lambda ledger, c: tokens.revoke_token(c, args.id, now_ms()))
    print(f"revoked {args.id}")


def cmd_peer_add(args: argparse.Namespace) -> None:
    entry = _write(args, lambda ledger, c: peers.add(ledger, c, args.id, args.url))
    if entry is None:
        print(f"already peered with {args.id} at {args.url}")
    else:
        print(f"peered with {args.id} at {args.url}; a running node starts syncing within "
              "a second (the peer's admin must add this node too)")


def cmd_peer_remove(args: argparse.Namespace) -> None:
    _write(args, lambda ledger, c: peers.remove(ledger, c, args.id))
    print(f"removed peer {args.id}")


def cmd_peer_list(args: argparse.Namespace) -> None:
    hops = load_config(args.home).hops
    raw = _read(args, lambda ledger, c: peers.rows(c, ledger.identity.public, hops))
    if args.json:
        _emit(args, [peers.as_json(p) for p in raw], str)
        return
    if not raw:
        print("no peers; add one with 'aidmesh peer add NODE_ID URL'")
    for p in raw:
        r = peers.as_json(p)
        behind = "?" if r["entries_behind"] is None else r["entries_behind"]
        print(f"{r['id']}  {r['url']}")
        print(f"    last success {r['last_success'] or 'never'}; behind {behind}; "
              f"in {r['entries_in']} entries / {r['bytes_in']} B; out {r['bytes_out']} B")
        if peers.error_is_current(p):
            print(f"    last error {r['last_error_at']}: {r['last_error']}")


# -- maintenance --------------------------------------------------------------------------------


def cmd_log_verify(args: argparse.Namespace) -> None:
    total, bad = _read(args, lambda ledger, c: status.verify_all(c))
    if bad:
        for problem in bad:
            print(f"FAILED {problem}", file=sys.stderr)
        raise CliError(f"{len(bad)} log(s) failed verification; restore from a backup or "
                       "re-sync them from a peer")
    print(f"ok: {total} entries verified")


def cmd_reindex(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        count = ledger.rebuild()
    print(f"rebuilt state from {count} entries")


def cmd_export(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        for item in status.export_entries(ledger.conn):
            print(json.dumps(item))
