"""The `aidmesh peer invite|join|invites|revoke-invite` commands: peering by invite code.

`join` runs the handshake from this process, even while the node runs: it calls the
inviting node itself, then writes our trust entry in one transaction of the data dir;
the running node notices the commit and starts syncing with the new peer.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from .commands import _emit, _ledger, _read, _write
from .config import load_config
from .federation.invites import join
from .services import peer_invites
from .services.values import rfc3339
from .store.ledger import Ledger, now_ms

T = TypeVar("T")


def cmd_peer_invite(args: argparse.Namespace) -> None:
    config = load_config(args.home)
    invite = _write(args, lambda ledger, c: peer_invites.create(c, ledger, config, now_ms(),
                                                                args.hours))
    print(f"one node may join with this code, once, until {rfc3339(invite.expires)}.")
    print("Its admin runs 'aidmesh peer join CODE' or pastes it on the Peers page:")
    print(f"link: {invite.link}")
    print(invite.code)


def cmd_peer_join(args: argparse.Namespace) -> None:
    config = load_config(args.home)
    with _ledger(args) as ledger:

        async def write(fn: Callable[[Ledger, sqlite3.Connection], T]) -> T:
            return ledger.transaction(lambda c: fn(ledger, c))

        peer = asyncio.run(join(args.code, identity=ledger.identity, config=config,
                                write=write))
    name = f"{peer['name']} " if peer["name"] else ""
    print(f"now peering with {name}{peer['id']} at {peer['url']}; both nodes trust each "
          "other and sync ('aidmesh peer list' shows progress)")


def cmd_peer_invites(args: argparse.Namespace) -> None:
    items = _read(args, lambda _, c: peer_invites.open_invites(c, now_ms()))
    if not items and not args.json:
        print("no open invites; 'aidmesh peer invite' makes one")
    _emit(args, items, lambda i: f"{i['id']}  until {rfc3339(i['expires'])}")


def cmd_peer_revoke_invite(args: argparse.Namespace) -> None:
    _write(args, lambda _, c: peer_invites.revoke(c, args.id))
    print(f"revoked invite {args.id}: its code no longer works")
