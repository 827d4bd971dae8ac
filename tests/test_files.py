"""The data dir is private: 0700, and the database, its WAL files, the config, the key and
backups 0600 (issue: files readable by anyone on the machine)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from node.cli import main
from node.home import initialise


def modes(home: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [home, *home.iterdir()]}


def test_init_makes_everything_private(tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["init", "--home", str(home)]) == 0
    found = modes(home)
    assert found.pop("home") == 0o700
    assert {"aidmesh.db", "aidmesh.toml", "node.key"} <= set(found), found
    assert all(mode == 0o600 for mode in found.values()), found


async def test_a_running_node_and_a_backup_stay_private(make_node, tmp_path, capsys):
    node = await make_node()
    await node.create("offer", title="Something to write to the WAL")
    home = node.home.path
    assert Path(f"{home}/aidmesh.db-wal").exists()
    found = modes(home)
    assert found.pop(home.name) == 0o700
    assert all(mode == 0o600 for mode in found.values()), found
    target = tmp_path / "backup.db"
    assert main(["--home", str(home), "backup", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_old_data_dir_is_tightened(tmp_path, capsys):
    home = tmp_path / "old"
    assert main(["init", "--home", str(home)]) == 0
    os.chmod(home, 0o755)
    for name in ("aidmesh.db", "aidmesh.toml"):
        os.chmod(home / name, 0o644)
    initialise(home)  # what `aidmesh run` does first
    found = modes(home)
    assert found.pop("old") == 0o700
    assert all(mode == 0o600 for mode in found.values()), found
