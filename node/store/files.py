"""Private files: the data dir is 0700 and every file in it 0600.

The database holds token hashes, webhook secrets and moderation state. SQLite creates its
-wal and -shm files with the database file's own mode, so creating the database 0600
before SQLite opens it is enough; existing files are tightened on every start (repairs
data dirs made by older versions).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if absent; tighten it if present."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    os.chmod(path, FILE_MODE)


def private_database(path: Path) -> None:
    """The database and its WAL companions, before SQLite opens them."""
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.chmod(companion, FILE_MODE)
