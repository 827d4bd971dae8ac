"""The `aidmesh` command. Every error is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from protocol import ProtocolError, parse_node_id

from . import __version__, auth
from .config import ConfigError, load_config
from .home import HomeError, initialise, load_identity
from .listing import payload_from_json, to_json
from .problems import Problem
from .query import ListingQuery, QueryError
from .query import run as run_query
from .store import Ledger, StoreError, heads, now_ms, verify_log


class CliError(Exception):
    pass


def _ledger(args: argparse.Namespace) -> Ledger:
    config = load_config(args.home)
    if not config.db_path.exists():
        raise CliError(f"no node in {config.home}; run 'aidmesh init' first "
                       "(or pass --home / set AIDMESH_HOME)")
    return Ledger(config.db_path, load_identity(config))


def cmd_init(args: argparse.Namespace) -> None:
    config = load_config(args.home)
    if config.key_path.exists():
        raise CliError(f"{config.home} already holds a node; use it with 'aidmesh run'")
    done = initialise(args.home, name=args.name)
    print(f"data dir:  {done.config.home.resolve()}")
    print(f"node id:   {done.identity.node_id}")
    print("admin token (shown once; keep it safe):")
    print(done.admin_token)


def cmd_run(args: argparse.Namespace) -> None:
    from aiohttp import web

    from .app import create_app

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
    print(f"aidmesh {__version__} node {done.identity.node_id}", flush=True)
    print(f"serving on http://{config.host}:{config.port}/api/v1 (Ctrl-C stops)", flush=True)
    web.run_app(create_app(config, done.identity), host=config.host, port=config.port,
                print=None, access_log=None)


def cmd_status(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        c = ledger.conn
        config = load_config(args.home)
        counts = c.execute(
            "SELECT (SELECT count(*) FROM entries) AS entries, (SELECT count(*) FROM heads) "
            "AS logs, (SELECT count(*) FROM listings WHERE kind='offer') AS offers, "
            "(SELECT count(*) FROM listings WHERE kind='need') AS needs").fetchone()
        own = heads(c).get(ledger.identity.public)
        print(f"node id:  {ledger.identity.node_id}")
        print(f"name:     {config.name}")
        print(f"data dir: {config.home.resolve()}")
        print(f"own log:  {own.seq if own else 0} entries")
        print(f"store:    {counts['entries']} entries in {counts['logs']} logs; "
              f"{counts['offers']} offers, {counts['needs']} needs")
        forks = c.execute("SELECT author, seq FROM forks").fetchall()
        peers = c.execute("SELECT count(*) FROM trust_edges WHERE author = ? AND active = 1",
                          (ledger.identity.public,)).fetchone()[0]
        print(f"peers:    {peers} ('aidmesh peer list' for sync progress)")
        if forks:
            print(f"FORKS:    {len(forks)} log(s) frozen at a fork:")
            for f in forks:
                print(f"  am{f['author'].hex()} at seq {f['seq']}")
        else:
            print("forks:    none")


def _listing_body(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {"title": args.title, "category": args.category,
                            "action": args.action}
    for key in ("description", "area", "available_from", "available_until", "language"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.quantity:
        value, _, unit = args.quantity.partition(" ")
        if not unit:
            raise CliError("--quantity is a number and a unit, e.g. '20 loaves'")
        body["quantity"] = {"value": value, "unit": unit.strip()}
    if args.tag:
        body["tags"] = args.tag
    if kind == "need":
        if args.urgency:
            body["urgency"] = args.urgency
        if args.radius_km is not None:
            body["radius_km"] = args.radius_km
    return body


def cmd_listing_add(kind: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        content = payload_from_json(kind, _listing_body(args, kind))
        with _ledger(args) as ledger:
            entry = ledger.transaction(lambda c: ledger.append_local(c, kind, content))
        print(entry.id.hex())

    return run


def cmd_listing_list(kind: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        query = ListingQuery(kind=kind, q=args.q, category=args.category, status=args.status,
                             limit=args.limit)
        with _ledger(args) as ledger:
            now = now_ms()
            rows, _ = run_query(ledger.conn, query, now)
        for row in rows:
            item = to_json(row, now)
            if args.json:
                print(json.dumps(item, ensure_ascii=False))
                continue
            qty = item.get("quantity")
            amount = f"{qty['value']} {qty['unit']}  " if qty else ""
            print(f"{item['id'][:12]}  {item['status']:<9} {item['category']:<18} "
                  f"{amount}{item['title']}")

    return run


def cmd_token_create(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        token_id, token = ledger.transaction(
            lambda c: auth.create_token(c, args.role, args.name, now_ms()))
    print(f"token {token_id} ({args.role}, {args.name!r}); shown once:")
    print(token)


def cmd_token_list(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        for t in auth.list_tokens(ledger.conn):
            state = "revoked" if t["revoked"] else "active"
            print(f"{t['id']}  {t['role']:<11} {state:<8} {t['name']}")


def cmd_token_revoke(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        if not ledger.transaction(lambda c: auth.revoke_token(c, args.id, now_ms())):
            raise CliError(f"no active token with id {args.id!r} ('aidmesh token list')")
    print(f"revoked {args.id}")


def cmd_log_verify(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        total, bad = 0, []
        for author in heads(ledger.conn):
            checked, problem = verify_log(ledger.conn, author)
            total += checked
            if problem:
                bad.append(problem)
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


def cmd_backup(args: argparse.Namespace) -> None:
    target = Path(args.path)
    if target.exists():
        raise CliError(f"{target} exists; choose a new file name")
    with _ledger(args) as ledger:
        dest = sqlite3.connect(target)
        with dest:
            ledger.conn.backup(dest)  # online backup: safe while the node runs
        dest.close()
    print(f"backed up to {target}")


def cmd_export(args: argparse.Namespace) -> None:
    with _ledger(args) as ledger:
        for row in ledger.conn.execute(
                "SELECT author, seq, id, kind, ts, raw, payload FROM entries "
                "ORDER BY author, seq"):
            print(json.dumps({
                "author": "am" + row["author"].hex(), "seq": row["seq"], "id": row["id"].hex(),
                "kind": row["kind"], "ts": row["ts"], "header": row["raw"].hex(),
                "payload": None if row["payload"] is None else row["payload"].hex()}))


def cmd_peer_add(args: argparse.Namespace) -> None:
    from .api import add_trust

    peer = parse_node_id(args.id)
    with _ledger(args) as ledger:
        if peer == ledger.identity.public:
            raise CliError("a node cannot peer with itself")
        entry = ledger.transaction(lambda c: add_trust(ledger, c, peer, args.url))
    if entry is None:
        print(f"already peered with {args.id} at {args.url}")
    else:
        print(f"peered with {args.id} at {args.url} (a running node picks this up within "
              "seconds)")


def cmd_peer_remove(args: argparse.Namespace) -> None:
    from .api import remove_trust

    peer = parse_node_id(args.id)
    with _ledger(args) as ledger:
        ledger.transaction(lambda c: remove_trust(ledger, c, peer))
    print(f"removed peer {args.id}")


def cmd_peer_list(args: argparse.Namespace) -> None:
    from .api import peer_rows

    with _ledger(args) as ledger:
        rows = peer_rows(ledger.conn, ledger.identity.public)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        print("no peers; add one with 'aidmesh peer add NODE_ID URL'")
    for r in rows:
        behind = "?" if r["entries_behind"] is None else r["entries_behind"]
        print(f"{r['id']}  {r['url']}")
        print(f"    last success {r['last_success'] or 'never'}; behind {behind}; "
              f"in {r['entries_in']} entries / {r['bytes_in']} B; out {r['bytes_out']} B")
        if r["last_error"]:
            print(f"    last error {r['last_error_at']}: {r['last_error']}")


def cmd_claim_list(args: argparse.Namespace) -> None:
    from .exchange_api import list_claims

    with _ledger(args) as ledger:
        items, _ = list_claims(ledger.conn, ledger, direction=args.direction,
                               state=args.status, limit=args.limit)
    for item in items:
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
            continue
        qty = item["quantity"]
        amount = f"{qty['value']} {qty['unit']}  " if qty else ""
        side = "in " if item["owner"] == ledger.identity.node_id else "out"
        print(f"{item['id'][:12]}  {side} {item['status']:<9} {item['target'][:12]}  "
              f"{amount}{item['message'] or ''}")


def cmd_claim_respond(action: str) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        from .exchange_api import parse_entry, respond, response_body

        raw: dict[str, Any] = {}
        if getattr(args, "quantity", None) is not None:
            raw["quantity"] = args.quantity
        body = response_body(action, raw)
        claim_id = parse_entry(args.id)
        with _ledger(args) as ledger:
            entry = ledger.transaction(
                lambda c: respond(ledger, c, action, claim_id, body, now_ms()))
        print(entry.id.hex())

    return run


def cmd_match_list(args: argparse.Namespace) -> None:
    from .exchange_api import list_matches

    with _ledger(args) as ledger:
        now = now_ms()
        items, _ = list_matches(ledger.conn, ledger.identity.node_id, now,
                                local_only=args.local_only, limit=args.limit)
    for item in items:
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
            continue
        km = "?" if item["distance_km"] is None else f"{item['distance_km']:.1f}"
        print(f"need {item['need']['id'][:12]} <- offer {item['offer']['id'][:12]}  "
              f"{km} km  {item['need']['title']} / {item['offer']['title']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aidmesh", description="Run and manage an aidmesh mutual-aid node.")
    parser.add_argument("--version", action="version", version=f"aidmesh {__version__}")
    parser.add_argument("--home", help="data dir (default ./aidmesh-data or $AIDMESH_HOME)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create a data dir: key, config, database, admin token")
    p.add_argument("--name", help="the group's name, shown to peers")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="serve the node (initialises a data dir on first run)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.set_defaults(func=cmd_run)

    sub.add_parser("status", help="node id, counts, forks").set_defaults(func=cmd_status)

    for kind in ("offer", "need"):
        p = sub.add_parser(kind, help=f"add or list {kind}s")
        ksub = p.add_subparsers(dest="action_cmd", required=True, metavar="ACTION")
        a = ksub.add_parser("add", help=f"post a new {kind}")
        a.add_argument("--title", required=True)
        a.add_argument("--category", required=True, help="taxonomy path, e.g. food/bread")
        a.add_argument("--action", default="transfer",
                       choices=["transfer", "deliverService", "lend", "use"])
        a.add_argument("--description")
        a.add_argument("--quantity", help="number and unit, e.g. '20 loaves'")
        a.add_argument("--area", help="H3 cell, resolution 8 or coarser")
        a.add_argument("--available-from", dest="available_from", help="RFC 3339 time")
        a.add_argument("--available-until", dest="available_until", help="RFC 3339 time")
        a.add_argument("--language")
        a.add_argument("--tag", action="append", help="repeat for several tags")
        if kind == "need":
            a.add_argument("--urgency", choices=["low", "normal", "high", "critical"])
            a.add_argument("--radius-km", dest="radius_km", type=int)
        a.set_defaults(func=cmd_listing_add(kind))
        ls = ksub.add_parser("list", help=f"list {kind}s")
        ls.add_argument("--q", help="full-text search")
        ls.add_argument("--category")
        ls.add_argument("--status", default="open",
                        choices=["open", "expired", "withdrawn", "all"])
        ls.add_argument("--limit", type=int, default=50)
        ls.add_argument("--json", action="store_true", help="one JSON object per line")
        ls.set_defaults(func=cmd_listing_list(kind))

    p = sub.add_parser("token", help="client API tokens")
    tsub = p.add_subparsers(dest="token_cmd", required=True, metavar="ACTION")
    t = tsub.add_parser("create", help="create a token (printed alone on the last line)")
    t.add_argument("--role", required=True, choices=list(auth.ROLES))
    t.add_argument("--name", default="cli")
    t.set_defaults(func=cmd_token_create)
    tsub.add_parser("list", help="list tokens").set_defaults(func=cmd_token_list)
    t = tsub.add_parser("revoke", help="revoke a token by id")
    t.add_argument("id")
    t.set_defaults(func=cmd_token_revoke)

    p = sub.add_parser("log", help="log maintenance")
    lsub = p.add_subparsers(dest="log_cmd", required=True, metavar="ACTION")
    lsub.add_parser("verify", help="re-verify every stored entry").set_defaults(
        func=cmd_log_verify)

    p = sub.add_parser("peer", help="trusted peers this node gossips with")
    psub = p.add_subparsers(dest="peer_cmd", required=True, metavar="ACTION")
    a = psub.add_parser("add", help="trust a peer: appends a trust entry")
    a.add_argument("id", help="the peer's node id (am + 64 hex)")
    a.add_argument("url", help="the peer's base URL, e.g. http://10.0.0.5:8080")
    a.set_defaults(func=cmd_peer_add)
    a = psub.add_parser("remove", help="stop trusting a peer: appends an untrust entry")
    a.add_argument("id")
    a.set_defaults(func=cmd_peer_remove)
    a = psub.add_parser("list", help="peers with sync progress")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_peer_list)

    p = sub.add_parser("claim", help="claims on offers and needs, and answers to them")
    csub = p.add_subparsers(dest="claim_cmd", required=True, metavar="ACTION")
    a = csub.add_parser("list", help="claims this node holds, newest first")
    a.add_argument("--direction", default="all", choices=["incoming", "outgoing", "all"])
    a.add_argument("--status", choices=["pending", "accepted", "declined", "fulfilled"])
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.set_defaults(func=cmd_claim_list)
    a = csub.add_parser("accept", help="commit a quantity to a claim on this node's listing")
    a.add_argument("id")
    a.add_argument("--quantity", help="in the listing's unit (default: what the claim asked, "
                   "at most what is left)")
    a.set_defaults(func=cmd_claim_respond("accept"))
    a = csub.add_parser("decline", help="turn down a pending claim on this node's listing")
    a.add_argument("id")
    a.set_defaults(func=cmd_claim_respond("decline"))

    p = sub.add_parser("match", help="needs and offers that fit each other")
    msub = p.add_subparsers(dest="match_cmd", required=True, metavar="ACTION")
    a = msub.add_parser("list", help="live matches, best first")
    a.add_argument("--local-only", dest="local_only", action="store_true",
                   help="only matches where the need or the offer is this node's")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.set_defaults(func=cmd_match_list)

    sub.add_parser("reindex", help="rebuild state from the log").set_defaults(func=cmd_reindex)
    p = sub.add_parser("backup", help="online backup of the database to PATH")
    p.add_argument("path")
    p.set_defaults(func=cmd_backup)
    sub.add_parser("export", help="every entry as JSON lines").set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except Problem as exc:
        field = f" ({exc.field})" if exc.field else ""
        print(f"aidmesh: error: {exc.detail}{field}", file=sys.stderr)
        return 1
    except ProtocolError as exc:
        print(f"aidmesh: error: {exc.detail}", file=sys.stderr)
        return 1
    except (CliError, ConfigError, HomeError, StoreError, auth.TokenError, QueryError) as exc:
        print(f"aidmesh: error: {exc}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError) as exc:
        print(f"aidmesh: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
