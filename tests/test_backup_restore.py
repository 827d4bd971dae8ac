"""A backup restores into a new data dir and serves the same logs (docs/operating.md).

Backups are directories (database, node key, settings) made while the node runs; a
restore checks that key and database belong together and that every log verifies
before it writes anything, and refuses a data dir that already holds a node."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from conftest import NEED, OFFER, NodeHome

from node.cli import main
from node.config import load_config
from node.home import load_identity


def run(capsys, home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def files_in(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


async def test_a_backup_restores_into_a_new_dir_with_the_same_heads(make_node, capsys,
                                                                     tmp_path):
    node = await make_node("original")
    for i in range(3):
        await node.create("offer", body={**OFFER, "title": f"Bread {i}"})
    await node.create("need", body=NEED)
    target = tmp_path / "backup"
    code, out, err = run(capsys, node.home.path, "backup", str(target))
    assert code == 0, err
    assert files_in(target) == ["aidmesh.db", "aidmesh.toml", "node.key"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "node.key").stat().st_mode) == 0o600
    await node.create("offer", body={**OFFER, "title": "After the backup"})

    restored = tmp_path / "restored"
    code, out, err = run(capsys, restored, "restore", str(target))
    assert code == 0, err
    assert node.node_id in out and "verified" in out
    config = load_config(restored)
    assert config.name == node.home.config.name
    home = NodeHome(restored, config, load_identity(config), node.home.admin_token)
    again = await make_node(home=home)
    logs = await again.json("GET", "/api/v1/logs")
    before = {log["author"]: log["seq"] for log in logs["logs"]}
    assert before == {node.node_id: 5}  # profile, 3 offers, a need: not the later offer
    titles = {o["title"] for o in (await again.json("GET", "/api/v1/offers"))["items"]}
    assert titles == {"Bread 0", "Bread 1", "Bread 2"}
    # The restored node signs as the same node: its log goes on from seq 5.
    await again.create("offer", body={**OFFER, "title": "From the restored node"})
    assert (await again.json("GET", "/api/v1/logs"))["logs"][0]["seq"] == 6


async def test_restore_refuses_and_writes_nothing(make_node, make_home, capsys, tmp_path):
    node = await make_node("original")
    backup = tmp_path / "backup"
    assert run(capsys, node.home.path, "backup", str(backup))[0] == 0
    database_only = tmp_path / "only.db"
    assert run(capsys, node.home.path, "backup", str(database_only))[0] == 0
    other = make_home("other")

    cases = [
        (tmp_path / "a", [str(backup / "nothing-here")], "no backup"),
        (tmp_path / "b", [str(database_only)], "give the node's key"),
        (tmp_path / "c", [str(database_only), "--key", str(other.config.key_path)],
         "does not belong"),
        (other.path, [str(backup)], "already holds a node"),
    ]
    for home, args, words in cases:
        before = files_in(home)
        code, out, err = run(capsys, home, "restore", *args)
        assert code == 1 and words in err, (args, err)
        assert files_in(home) == before, args

    # A log changed in the backup (one signed header byte) and a file that is no
    # database at all: both refused, nothing written.
    tampered, broken = tmp_path / "tampered", tmp_path / "broken"
    for copy in (tampered, broken):
        copy.mkdir()
        for name in ("node.key", "aidmesh.toml", "aidmesh.db"):
            (copy / name).write_bytes((backup / name).read_bytes())
    conn = sqlite3.connect(tampered / "aidmesh.db")
    with conn:
        raw = bytearray(conn.execute("SELECT raw FROM entries WHERE seq = 1").fetchone()[0])
        raw[-1] ^= 1
        conn.execute("UPDATE entries SET raw = ? WHERE seq = 1", (bytes(raw),))
    conn.close()
    (broken / "aidmesh.db").write_bytes(b"not a database" * 100)
    for source, words in ((tampered, "fail verification"), (broken, "damaged")):
        code, out, err = run(capsys, tmp_path / "d", "restore", str(source))
        assert code == 1 and words in err, err
        assert files_in(tmp_path / "d") == []

    # A database alone, with its own key, restores.
    code, out, err = run(capsys, tmp_path / "e", "restore", str(database_only), "--key",
                         str(node.home.config.key_path))
    assert code == 0, err
