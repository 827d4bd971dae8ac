"""The `aidmesh` command line: arguments in, one command of commands.py, errors out.

Every refusal, whatever layer raised it, is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence

from protocol import ProtocolError
from protocol.taxonomy import LANGUAGES as LABEL_LANGUAGES

from . import __version__
from . import commands as cmd
from . import commands_ops as ops
from . import commands_peering as cmd_peering
from . import commands_people as cmd_people
from . import commands_sheets as cmd_sheets
from .config import ConfigError
from .home import HomeError
from .services.errors import ServiceError
from .services.tokens import ROLES
from .store.ledger import StoreError
from .store.lock import LockedError


def build_parser() -> argparse.ArgumentParser:
    # --home is accepted before the command and after it (`aidmesh init --home X`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", default=argparse.SUPPRESS,
                        help="data dir (default ./aidmesh-data or $AIDMESH_HOME)")
    parser = argparse.ArgumentParser(
        prog="aidmesh", description="Run and manage an aidmesh mutual-aid node.")
    parser.add_argument("--version", action="version", version=f"aidmesh {__version__}")
    parser.add_argument("--home", help="data dir (default ./aidmesh-data or $AIDMESH_HOME)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        p = sub.add_parser(name, help=help_text)
        return p.add_subparsers(dest=f"{name}_cmd", required=True, metavar="ACTION")

    def command(where: argparse._SubParsersAction, name: str, help_text: str, func,
                *, json_out: bool = False) -> argparse.ArgumentParser:
        p = where.add_parser(name, help=help_text, parents=[common])
        p.set_defaults(func=func)
        if json_out:
            p.add_argument("--json", action="store_true", help="one JSON object per line")
        return p

    p = command(sub, "init", "create a data dir: key, config, database, admin token",
                cmd.cmd_init)
    p.add_argument("--name", help="the group's name, shown to peers")
    p = command(sub, "run", "serve the node (initialises a data dir on first run)",
                cmd.cmd_run)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    command(sub, "status", "node id, name, data dir, counts, peers, forks", cmd.cmd_status)

    for kind in ("offer", "need"):
        ksub = group(kind, f"post, list, show or withdraw {kind}s")
        a = command(ksub, "add", f"post a new {kind}", cmd.cmd_listing_add(kind),
                    json_out=True)
        a.add_argument("--title", required=True)
        a.add_argument("--category", required=True,
                       help="taxonomy path, e.g. food/bread ('aidmesh categories' lists them)")
        a.add_argument("--action", default="transfer",
                       choices=["transfer", "deliverService", "lend", "use"])
        a.add_argument("--description")
        a.add_argument("--quantity", help="number and unit, e.g. '20 loaves' (stored as "
                       "'20 loaf'; 'aidmesh units' lists the units)")
        a.add_argument("--area", help="H3 cell, resolution 8 or coarser")
        a.add_argument("--available-from", dest="available_from", help="RFC 3339 time")
        a.add_argument("--available-until", dest="available_until", help="RFC 3339 time")
        a.add_argument("--language")
        a.add_argument("--tag", action="append", help="repeat for several tags")
        if kind == "need":
            a.add_argument("--urgency", choices=["low", "normal", "high", "critical"])
            a.add_argument("--radius-km", dest="radius_km", type=int)
        ls = command(ksub, "list", f"list {kind}s, newest first", cmd.cmd_listing_list(kind),
                     json_out=True)
        ls.add_argument("--q", help="full-text search")
        ls.add_argument("--category")
        ls.add_argument("--status", default="open",
                        choices=["open", "committed", "fulfilled", "expired", "withdrawn",
                                 "all"])
        ls.add_argument("--limit", type=int, default=50)
        for name, func, text in (("show", cmd.cmd_listing_show, f"show one {kind}"),
                                 ("withdraw", cmd.cmd_listing_withdraw,
                                  f"withdraw one of this node's {kind}s")):
            a = command(ksub, name, text, func(kind), json_out=True)
            a.add_argument("id", help="its id, or the first 8+ hex digits of it")

    tsub = group("token", "client API tokens")
    t = command(tsub, "create", "create a token (printed alone on the last line)",
                cmd.cmd_token_create)
    t.add_argument("--role", required=True, choices=list(ROLES))
    t.add_argument("--name", default="cli")
    command(tsub, "list", "list tokens", cmd.cmd_token_list, json_out=True)
    command(tsub, "revoke", "revoke a token by id", cmd.cmd_token_revoke).add_argument("id")

    psub = group("person", "people who sign in to the web app")
    a = command(psub, "invite", "make a one-time join link (printed alone on the last line)",
                cmd_people.cmd_person_invite)
    a.add_argument("--role", default="coordinator", choices=list(ROLES),
                   help="what the new person may do (default coordinator)")
    a.add_argument("--days", type=int, default=7, help="how long the link works (1-30)")
    command(psub, "list", "people, with their role", cmd_people.cmd_person_list,
            json_out=True)
    command(psub, "revoke", "remove a person: ends their sessions at once",
            cmd_people.cmd_person_revoke).add_argument("name")

    asub = group("area", "the group's named areas, offered in the web app's forms")
    a = command(asub, "add", "name the coarse area around a point (only the cell is kept)",
                cmd_people.cmd_area_add)
    a.add_argument("name", help="e.g. Northside")
    a.add_argument("--lat", required=True, help="latitude in decimal degrees, e.g. 40.4168")
    a.add_argument("--lng", required=True, help="longitude in decimal degrees, e.g. -3.7038")
    command(asub, "list", "the named areas and their cells", cmd_people.cmd_area_list,
            json_out=True)
    command(asub, "remove", "forget a named area", cmd_people.cmd_area_remove
            ).add_argument("name")

    lsub = group("log", "log maintenance")
    command(lsub, "verify", "re-verify every stored entry", cmd.cmd_log_verify)

    psub = group("peer", "trusted peers this node gossips with")
    a = command(psub, "add", "trust a peer: appends a trust entry", cmd.cmd_peer_add)
    a.add_argument("id", help="the peer's node id (am + 64 hex, as its 'aidmesh status' "
                   "prints it)")
    a.add_argument("url", help="the peer's base URL, e.g. http://10.0.0.5:8080")
    command(psub, "remove", "stop trusting a peer: appends an untrust entry",
            cmd.cmd_peer_remove).add_argument("id")
    command(psub, "list", "peers with sync progress", cmd.cmd_peer_list, json_out=True)
    a = command(psub, "invite", "make a one-time invite code another node joins with "
                "(needs public_url)", cmd_peering.cmd_peer_invite)
    a.add_argument("--hours", type=int, default=72, help="how long the code works (1-720, "
                   "default 72)")
    command(psub, "join", "peer with the node that made an invite code: both trust each "
            "other", cmd_peering.cmd_peer_join).add_argument(
        "code", help="the code (or the whole link) the other node's admin gave you")
    command(psub, "invites", "invite codes not used yet", cmd_peering.cmd_peer_invites,
            json_out=True)
    command(psub, "revoke-invite", "make an unused invite code stop working",
            cmd_peering.cmd_peer_revoke_invite).add_argument("id")

    csub = group("claim", "claims on offers and needs, and answers to them")
    a = command(csub, "list", "claims this node holds, newest first", cmd.cmd_claim_list,
                json_out=True)
    a.add_argument("--direction", default="all", choices=["incoming", "outgoing", "all"])
    a.add_argument("--status", choices=["pending", "accepted", "declined", "fulfilled"])
    a.add_argument("--limit", type=int, default=50)
    for action, text in (("accept", "commit a quantity to a claim on this node's listing"),
                         ("decline", "turn down a pending claim on this node's listing"),
                         ("fulfil", "record that the hand-over of an accepted claim "
                          "happened")):
        a = command(csub, action, text, cmd.cmd_claim_respond(action), json_out=True)
        a.add_argument("id", help="the claim's id, or the first 8+ hex digits of it")
        if action == "decline":
            a.add_argument("--reason")
        else:
            a.add_argument("--quantity", help="a number in the listing's unit, or a number "
                           "and a unit that converts to it, e.g. '500 g' (accept: default "
                           "what the claim asked, at most what is left)")

    msub = group("match", "needs and offers that fit each other")
    a = command(msub, "list", "live matches, best first", cmd.cmd_match_list, json_out=True)
    a.add_argument("--local-only", dest="local_only", action="store_true",
                   help="only matches where the need or the offer is this node's")
    a.add_argument("--limit", type=int, default=50)

    for name, func, text in (("categories", cmd.cmd_categories, "the categories offers and "
                              "needs take: starter taxonomy, the group's own, peers'"),
                             ("units", cmd.cmd_units, "the units quantities take, with "
                              "their conversions and synonyms")):
        a = command(sub, name, text, func, json_out=True)
        a.add_argument("--lang", default="en", choices=list(LABEL_LANGUAGES), help="label language")

    command(sub, "reindex", "rebuild state from the log", cmd.cmd_reindex)
    command(sub, "backup", "back up the data dir (database, key, settings) to the new "
            "directory PATH, safely while the node runs; PATH ending in .db: the database "
            "alone", ops.cmd_backup).add_argument("path")
    a = command(sub, "restore", "restore a backup into a new, empty data dir (--home)",
                ops.cmd_restore)
    a.add_argument("source", help="a directory made by 'aidmesh backup', or a .db file")
    a.add_argument("--key", help="the node.key file, when SOURCE is a .db file")
    p = command(sub, "export", "offers, needs, claims or hand-overs as CSV (without WHAT: "
                "every entry as JSON lines)", cmd_sheets.cmd_export)
    p.add_argument("what", nargs="?", choices=["offers", "needs", "claims", "handovers"])
    p.add_argument("--bom", action="store_true", help="start with a UTF-8 BOM (Excel)")
    p.add_argument("--delimiter", default="comma", choices=["comma", "semicolon"])
    p.add_argument("--scope", default="ours", choices=["ours", "all"],
                   help="offers and needs: this group's own (default) or all shown here")
    p.add_argument("-o", "--output", help="file to write (default standard output)")
    p = command(sub, "import", "post offers and needs from a CSV file, after a preview",
                cmd_sheets.cmd_import, json_out=True)
    p.add_argument("file", help="the CSV file (docs/sample-offers.csv shows the columns)")
    p.add_argument("--kind", choices=["offer", "need"], help="for rows without a kind column")
    p.add_argument("--yes", action="store_true", help="post without asking")
    p.add_argument("--map", action="append", metavar="COLUMN=FIELD",
                   help="read a column as a field (title, category, quantity, unit, until, "
                   "from, area, urgency, tags, description, kind, action, language, key, "
                   "ignore); repeat for several")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ServiceError, ProtocolError, StoreError) as exc:
        field = f" ({exc.field})" if getattr(exc, "field", None) else ""
        print(f"aidmesh: error: {exc.detail}{field}", file=sys.stderr)
        return 1
    except (cmd.CliError, ConfigError, HomeError, LockedError, sqlite3.Error,
            OSError) as exc:
        print(f"aidmesh: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
