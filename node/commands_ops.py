"""The `aidmesh backup` and `aidmesh restore` commands: a data dir saved whole (database,
key, settings) and put back into a new one. Beside commands.py to keep both small."""

from __future__ import annotations

import argparse
from pathlib import Path

from .commands import _read
from .config import load_config
from .services import backups
from .store.lock import RunLock


def cmd_backup(args: argparse.Namespace) -> None:
    target = Path(args.path)
    home = load_config(args.home).home
    whole = _read(args, lambda _, c: backups.backup(c, home, target))
    if whole:
        print(f"backed up to {target}/ (database, node key, settings); keep it as safe as "
              "the node itself: the key signs for your group")
    else:
        print(f"backed up the database to {target}; it cannot be restored without "
              f"{home / 'node.key'}: keep that too, or back up to a directory instead")


def cmd_restore(args: argparse.Namespace) -> None:
    home = load_config(args.home).home
    backups.check_empty(home)  # before the lock file is made there
    lock = RunLock(home) if home.exists() else None
    if lock is not None:
        lock.acquire()  # a node running on the target dir stops the restore here
    try:
        done = backups.restore(Path(args.source), home,
                               Path(args.key) if args.key else None)
    finally:
        if lock is not None:
            lock.release()
    print(f"restored node {done.node_id} into {home.resolve()}: {done.logs} logs, "
          f"{done.entries} entries, all verified")
    print(f"start it with: aidmesh --home {home} run")
