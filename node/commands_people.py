"""The `aidmesh person` and `aidmesh area` commands: who may sign in to the web app, and
the group's named areas. Beside commands.py (whose helpers they use) to keep both small.
"""

from __future__ import annotations

import argparse
import sqlite3
from dataclasses import asdict

from .commands import _emit, _read, _write
from .config import load_config
from .services import areas, people
from .services.values import rfc3339
from .store.ledger import Ledger, now_ms


def cmd_person_invite(args: argparse.Namespace) -> None:
    now = now_ms()

    def make(_: Ledger, c: sqlite3.Connection) -> tuple[str, people.Invite]:
        token = people.create_invite(c, args.role, None, now, args.days)
        return token, people.invite(c, token, now)

    token, invite = _write(args, make)
    print(f"one {args.role} may join with this link, once, until {rfc3339(invite.expires)}:")
    print(people.join_link(load_config(args.home), token))


def cmd_person_list(args: argparse.Namespace) -> None:
    items = _read(args, lambda _, c: people.list_people(c))
    if not items and not args.json:
        print("nobody can sign in yet; 'aidmesh person invite --role admin' makes a link")
    _emit(args, items, lambda p: f"{p['role']:<11} "
          f"{'removed' if p['revoked'] else 'active':<7} {p['name']}")


def cmd_person_revoke(args: argparse.Namespace) -> None:
    _write(args, lambda _, c: people.revoke_person(c, None, people.named(c, args.name).id,
                                                   now_ms()))
    print(f"removed {args.name}: their sessions have ended and they can no longer sign in")


def cmd_area_add(args: argparse.Namespace) -> None:
    area = _write(args, lambda _, c: areas.add(c, args.name, args.lat, args.lng, now_ms()))
    print(f"area {area.name}: H3 cell {area.cell} (resolution {areas.AREA_RESOLUTION}; the "
          "coordinates are not kept)")


def cmd_area_list(args: argparse.Namespace) -> None:
    items = _read(args, lambda _, c: [asdict(a) for a in areas.list_areas(c)])
    if not items and not args.json:
        print("no areas yet; add one with 'aidmesh area add NAME --lat X --lng Y'")
    _emit(args, items, lambda a: f"{a['cell']}  {a['name']}")


def cmd_area_remove(args: argparse.Namespace) -> None:
    area = _write(args, lambda _, c: areas.remove(c, args.name))
    print(f"removed area {area.name}; offers and needs posted with it keep their cell")
