"""One running node per data dir: an advisory lock held for the node's lifetime.

Two nodes on one database would each sign entries with the same key from their own view
of the head, which forks the log. The CLI does not take the lock: its writes are single
transactions that the running node notices (writer.py) and treats as its own.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockedError(Exception):
    """Another process holds the data dir."""


class RunLock:
    def __init__(self, home: Path) -> None:
        self.path = Path(home) / "aidmesh.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"another aidmesh node (pid {holder}) is running on "
                              f"{self.path.parent.resolve()}; stop it first, or give this "
                              "one its own data dir with --home") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays for the next run
            self._fd = None
