"""Backups a person can restore: the database, the node's key and its settings together.

A database restored without its key is a node that can no longer sign: its own log is
frozen for good, and a new key is another node to every peer. So a backup is a directory
holding all three, and `restore` checks that the key and the database belong together and
that every log verifies before it writes anything.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from protocol import Identity

from ..store.files import private_dir, private_file
from .errors import Conflict, Invalid, NotFound
from .status import backup as backup_database
from .status import verify_all

DATABASE, KEY, SETTINGS = "aidmesh.db", "node.key", "aidmesh.toml"


@dataclass(frozen=True)
class Restored:
    node_id: str
    logs: int
    entries: int


def backup(conn: sqlite3.Connection, home: Path, target: Path) -> bool:
    """Back up the data dir ``home`` (its database through ``conn``, safe while the node
    runs) to the new directory ``target``; a target ending in .db gets the database alone
    (as before: keep node.key yourself). Returns whether the key went with it."""
    if target.suffix == ".db":
        backup_database(conn, target)
        return False
    if target.exists():
        raise Conflict("exists", f"{target} exists; choose a new directory name")
    private_dir(target)
    backup_database(conn, target / DATABASE)
    _copy_private(home / KEY, target / KEY)
    if (home / SETTINGS).exists():
        _copy_private(home / SETTINGS, target / SETTINGS)
    return True


def _copy_private(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out)


def restore(source: Path, home: Path, key: Path | None = None) -> Restored:
    """Restore a backup into the empty data dir ``home``. ``source`` is a directory made
    by `backup`, or a .db file with ``key`` the node's key file."""
    database, key_file = _parts(source, key)
    check_empty(home)
    try:
        identity = Identity.from_pem(key_file.read_bytes())
    except (ValueError, TypeError):
        raise Invalid("bad-key", f"{key_file} is not an aidmesh node key") from None
    summary = _check(database, identity)
    private_dir(home)
    private_file(home / DATABASE)
    src = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    dest = sqlite3.connect(home / DATABASE)
    try:
        with dest:
            src.backup(dest)
    finally:
        src.close()
        dest.close()
    _copy_private(key_file, home / KEY)
    settings = database.parent / SETTINGS
    if settings.exists() and source.is_dir():
        _copy_private(settings, home / SETTINGS)
    return summary


def check_empty(home: Path) -> None:
    if (home / KEY).exists() or (home / DATABASE).exists():
        raise Conflict("not-empty", f"{home} already holds a node; restore into a new, "
                       "empty data dir (--home NEW_DIR)")


def _parts(source: Path, key: Path | None) -> tuple[Path, Path]:
    if source.is_dir():
        database, key_file = source / DATABASE, key or source / KEY
    elif source.is_file():
        if key is None:
            raise Invalid("no-key", f"{source} is a database alone; give the node's key "
                          "file too (--key PATH/node.key)", field="key")
        database, key_file = source, key
    else:
        raise NotFound("no-backup", f"no backup at {source}")
    for path in (database, key_file):
        if not path.is_file():
            raise NotFound("no-backup", f"{path} is missing: a backup made by 'aidmesh "
                           "backup DIR' holds aidmesh.db, node.key and aidmesh.toml")
    return database, key_file


def _check(database: Path, identity: Identity) -> Restored:
    """The database is whole, is this key's node, and every log in it verifies."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        try:
            whole = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            own = conn.execute("SELECT 1 FROM heads WHERE author = ?",
                               (identity.public,)).fetchone() is not None
        except sqlite3.DatabaseError:
            whole = own = False
        if not whole:
            raise Invalid("corrupt", f"{database} is damaged (SQLite integrity check "
                          "failed); restore an older backup")
        if not own:
            raise Invalid("key-mismatch", "this key does not belong to the node whose "
                          "database this is; give the node.key saved with it")
        count, bad = verify_all(conn)
        if bad:
            raise Invalid("corrupt", f"{len(bad)} log(s) in the backup fail verification; "
                          "restore an older backup")
        logs = conn.execute("SELECT count(*) FROM heads").fetchone()[0]
    finally:
        conn.close()
    return Restored(identity.node_id, logs, count)
