"""The aidmesh CLI, run in-process through node.cli.main, on real data dirs."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import stat
import sys
from pathlib import Path

import aiohttp
import pytest
from conftest import OFFER, make_log, wait_for

from node.cli import main
from node.services import tokens as auth
from node.store.ledger import verify_log
from protocol import Identity, decode, verify_run


def run(capsys, home: Path | str, *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aidmesh: error: ")
    for word in words:
        assert word in lines[0], lines[0]


def ro(home) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{Path(home) / 'aidmesh.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


# -- init and tokens ---------------------------------------------------------------------------


def test_init_creates_key_config_db_and_prints_token_last(tmp_path, capsys):
    home = tmp_path / "bakery"
    code, out, err = run(capsys, home, "init", "--name", "Corner Bakery")
    assert code == 0, err
    key = home / "node.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "Corner Bakery" in (home / "aidmesh.toml").read_text()
    token = out.strip().splitlines()[-1]
    assert token.startswith("amt_") and " " not in token
    identity = Identity.from_pem(key.read_bytes())
    assert identity.node_id in out
    conn = ro(home)
    try:
        assert auth.check_token(conn, token).role == "admin"
        profile = conn.execute("SELECT kind, payload FROM entries").fetchall()
        assert [r["kind"] for r in profile] == ["profile"]
        assert decode(profile[0]["payload"])["name"] == "Corner Bakery"
    finally:
        conn.close()
    # a second init refuses, one line, and leaves the key alone
    before = key.read_bytes()
    code, out, err = run(capsys, home, "init")
    one_line_error(code, err, "already")
    assert key.read_bytes() == before


def test_token_create_list_revoke(node_home, capsys):
    code, out, err = run(capsys, node_home.path, "token", "create", "--role", "coordinator",
                         "--name", "bread bot")
    assert code == 0, err
    token = out.splitlines()[-1]
    assert token == token.strip() and token.startswith("amt_")
    token_id = token.split("_")[1]
    conn = ro(node_home.path)
    try:
        assert auth.check_token(conn, token).role == "coordinator"
    finally:
        conn.close()
    code, out, _ = run(capsys, node_home.path, "token", "list")
    line = next(x for x in out.splitlines() if x.startswith(token_id))
    assert "coordinator" in line and "active" in line and "bread bot" in line
    assert token.split("_", 2)[2] not in out  # never the secret
    code, out, _ = run(capsys, node_home.path, "token", "revoke", token_id)
    assert code == 0 and token_id in out
    conn = ro(node_home.path)
    try:
        assert auth.check_token(conn, token) is None
    finally:
        conn.close()
    code, out, _ = run(capsys, node_home.path, "token", "list")
    assert "revoked" in next(x for x in out.splitlines() if x.startswith(token_id))
    code, _, err = run(capsys, node_home.path, "token", "revoke", token_id)
    one_line_error(code, err, token_id)


# -- offers and needs ----------------------------------------------------------------------------


def test_offer_add_and_list(node_home, capsys):
    code, out, err = run(capsys, node_home.path, "offer", "add", "--title", "Fresh bread",
                         "--category", "food/bread", "--quantity", "20 loaves",
                         "--description", "Sourdough", "--area", "881f1d4811fffff",
                         "--available-until", "2099-01-01T18:00:00Z", "--tag", "vegan",
                         "--tag", "bakery", "--language", "en", "--json")
    assert code == 0, err
    offer_id = json.loads(out)["id"]
    assert len(offer_id) == 64
    run(capsys, node_home.path, "offer", "add", "--title", "Ladder", "--category",
        "tools/hand", "--action", "lend")
    code, out, _ = run(capsys, node_home.path, "offer", "list")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2
    bread = next(x for x in lines if "Fresh bread" in x)
    assert bread.startswith(offer_id[:12]) and "20 loaf" in bread and "open" in bread
    code, out, _ = run(capsys, node_home.path, "offer", "list", "--json", "--q", "sourdough")
    items = [json.loads(x) for x in out.strip().splitlines()]
    assert [i["id"] for i in items] == [offer_id]
    assert items[0]["quantity"] == {"value": 20, "unit": "loaf"}  # normalised
    assert items[0]["tags"] == ["vegan", "bakery"]
    code, out, _ = run(capsys, node_home.path, "offer", "list", "--category", "tools")
    assert "Ladder" in out and "Fresh bread" not in out


def test_need_add_and_list(node_home, capsys):
    code, out, err = run(capsys, node_home.path, "need", "add", "--title", "Baby formula",
                         "--category", "food/baby", "--urgency", "critical",
                         "--radius-km", "5")
    assert code == 0, err
    # A person reads what was posted: kind, short id, status, category, title.
    assert out.startswith("posted need ") and "open" in out and "Baby formula" in out
    need_id = out.split()[2]
    assert len(need_id) == 12
    code, out, _ = run(capsys, node_home.path, "need", "list", "--json")
    (item,) = [json.loads(x) for x in out.strip().splitlines()]
    assert item["id"].startswith(need_id) and item["urgency"] == "critical"
    assert item["radius_km"] == 5
    code, out, _ = run(capsys, node_home.path, "offer", "list")
    assert out == ""


@pytest.mark.parametrize("args,words", [
    (["offer", "add", "--title", "x", "--category", "Food Stuff"], ["category"]),
    (["offer", "add", "--title", "x", "--category", "food", "--quantity", "20"], ["quantity"]),
    (["offer", "add", "--title", "x", "--category", "food", "--quantity", "-2 kg"],
     ["quantity.value"]),
    (["offer", "add", "--title", "x", "--category", "food", "--area", "52.5,13.4"], ["area"]),
    (["offer", "add", "--title", "x", "--category", "food", "--available-until", "soon"],
     ["available_until"]),
    (["need", "add", "--title", "", "--category", "food"], ["title"]),
])
def test_bad_listing_is_one_line_and_writes_nothing(node_home, capsys, args, words):
    before = node_home.snapshot()
    code, out, err = run(capsys, node_home.path, *args)
    one_line_error(code, err, *words)
    assert out == ""
    assert node_home.snapshot() == before


@pytest.mark.parametrize("args", [
    ["status"], ["offer", "list"], ["need", "add", "--title", "x", "--category", "food"],
    ["token", "create", "--role", "reader"], ["token", "list"], ["log", "verify"],
    ["reindex"], ["export"], ["backup", "x.db"],
])
def test_missing_data_dir_is_one_line(tmp_path, capsys, args):
    home = tmp_path / "nowhere"
    code, out, err = run(capsys, home, *args)
    one_line_error(code, err, "aidmesh init")
    assert not (home / "aidmesh.db").exists()


def test_bad_config_is_one_line(node_home, capsys):
    node_home.config.config_path.write_text("port = 'eighty'\n")
    code, _, err = run(capsys, node_home.path, "status")
    one_line_error(code, err, "port")
    node_home.config.config_path.write_text("colour = 'red'\n")
    code, _, err = run(capsys, node_home.path, "status")
    one_line_error(code, err, "colour")


def test_key_readable_by_others_is_refused(node_home, capsys):
    node_home.config.key_path.chmod(0o644)
    code, _, err = run(capsys, node_home.path, "status")
    one_line_error(code, err, "chmod 600")


# -- status, verify, reindex, export, backup -------------------------------------------------------


def test_status(node_home, capsys):
    run(capsys, node_home.path, "offer", "add", "--title", "Bread", "--category", "food")
    run(capsys, node_home.path, "need", "add", "--title", "Rice", "--category", "food")
    code, out, err = run(capsys, node_home.path, "status")
    assert code == 0, err
    assert node_home.node_id in out
    assert "own log:  3 entries" in out
    assert "1 offers, 1 needs" in out
    assert "forks:    none" in out


def seed(home, capsys) -> None:
    for i in range(3):
        run(capsys, home.path, "offer", "add", "--title", f"Bread {i}", "--category", "food")
    run(capsys, home.path, "need", "add", "--title", "Plumber", "--category",
        "skills/plumbing")


def test_log_verify_ok(node_home, capsys):
    seed(node_home, capsys)
    code, out, err = run(capsys, node_home.path, "log", "verify")
    assert code == 0, err
    assert out.strip() == "ok: 5 entries verified"


@pytest.mark.parametrize("column,seq", [("payload", 2), ("raw", 2), ("raw", 5),
                                        ("payload", 5)])
def test_log_verify_catches_tampering(node_home, capsys, column, seq):
    seed(node_home, capsys)
    conn = sqlite3.connect(node_home.config.db_path)
    try:
        blob = bytearray(conn.execute(f"SELECT {column} FROM entries WHERE seq = ?",
                                      (seq,)).fetchone()[0])
        blob[-3] ^= 0x01  # one flipped bit inside the stored bytes
        with conn:
            conn.execute(f"UPDATE entries SET {column} = ? WHERE seq = ?", (bytes(blob), seq))
    finally:
        conn.close()
    code, out, err = run(capsys, node_home.path, "log", "verify")
    assert code == 1
    assert "ok:" not in out
    lines = err.strip().splitlines()
    assert lines[0].startswith("FAILED ") and node_home.identity.public.hex() in lines[0]
    assert lines[-1].startswith("aidmesh: error: 1 log(s) failed verification")


def test_reindex_reproduces_the_projection(node_home, capsys):
    seed(node_home, capsys)
    ledger = node_home.ledger()
    try:
        (first,) = ledger.conn.execute("SELECT id FROM listings WHERE title = 'Bread 0'").fetchone()
        target = bytes.fromhex(first)
        ledger.transaction(lambda c: (
            ledger.append_local(c, "update", {"target": target, "set": {"title": "Rye"}}),
            ledger.append_local(c, "withdraw", {"target": target})))
    finally:
        ledger.close()
    other = Identity.generate()
    node_home.ingest(make_log(other, [
        ("offer", {"title": "Their soup", "category": "food/meals", "action": "transfer"})]))
    before = node_home.listings()
    assert len(before) == 5
    # wreck the projection: reindex must rebuild it from the log alone
    conn = sqlite3.connect(node_home.config.db_path)
    with conn:
        conn.execute("UPDATE listings SET title = 'garbage', withdrawn = 0")
        conn.execute("DELETE FROM listings WHERE kind = 'need'")
        conn.execute("DELETE FROM heads")
    conn.close()
    code, out, err = run(capsys, node_home.path, "reindex")
    assert code == 0, err
    assert out.strip() == "rebuilt state from 8 entries"
    assert node_home.listings() == before
    assert len(node_home.heads()) == 2
    # full-text search is rebuilt with it
    code, out, _ = run(capsys, node_home.path, "offer", "list", "--json", "--q", "soup")
    assert [json.loads(x)["title"] for x in out.splitlines()] == ["Their soup"]
    code, out, _ = run(capsys, node_home.path, "offer", "list", "--q", "garbage")
    assert out == ""


def test_export_json_lines(node_home, capsys):
    seed(node_home, capsys)
    code, out, err = run(capsys, node_home.path, "export")
    assert code == 0, err
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert {r["author"] for r in rows} == {node_home.node_id}
    assert [r["kind"] for r in rows] == ["profile", "offer", "offer", "offer", "need"]
    run_ = verify_run([(bytes.fromhex(r["header"]), bytes.fromhex(r["payload"])) for r in rows])
    assert [e.id.hex() for e in run_] == [r["id"] for r in rows]


async def test_backup_while_the_node_runs(make_node, capsys, tmp_path):
    node = await make_node()
    for i in range(5):
        await node.create("offer", title=f"Backed up {i}")
    target = tmp_path / "backup.db"
    code, out, err = run(capsys, node.home.path, "backup", str(target))
    assert code == 0, err
    assert str(target) in out
    # the node keeps serving and writing after the backup
    await node.create("offer", title="After the backup")
    conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 6
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert verify_log(conn, node.home.identity.public) == (6, None)
        titles = {r[0] for r in conn.execute("SELECT title FROM listings")}
        assert titles == {f"Backed up {i}" for i in range(5)}
    finally:
        conn.close()
    # never overwrites
    code, _, err = run(capsys, node.home.path, "backup", str(target))
    one_line_error(code, err, "exists")


# -- run ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_run_serves_a_fresh_node_and_stops_cleanly(tmp_path, capsys):
    home = tmp_path / "served"
    port = free_port()
    errors = (tmp_path / "stderr.txt").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "--home", str(home), "run", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=errors, cwd=Path(__file__).parent.parent)
    try:
        lines = []
        while not lines or not lines[-1].startswith("serving on"):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"run exited: {(tmp_path / 'stderr.txt').read_text()}"
            lines.append(line.decode().strip())
        token = lines[lines.index(next(x for x in lines if "admin token" in x)) + 1]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async def healthy():
                try:
                    async with http.get(f"{base}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(healthy, timeout=20, what="the node to answer /healthz")
            async with http.post(f"{base}/api/v1/offers", json=OFFER,
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 201, await r.text()
                offer_id = (await r.json())["id"]
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        errors.close()
    code, out, _ = run(capsys, home, "offer", "list")
    assert code == 0 and offer_id[:12] in out


# -- the CLI a person expects ----------------------------------------------------------------


def test_home_may_come_after_the_command(tmp_path, capsys):
    home = tmp_path / "late"
    assert main(["init", "--home", str(home), "--name", "Late Home"]) == 0
    capsys.readouterr()
    assert main(["status", "--home", str(home)]) == 0
    assert "Late Home" in capsys.readouterr().out


def test_ids_by_unique_prefix_and_a_clear_word_when_ambiguous(node_home, capsys, monkeypatch):
    from node.services import ids

    made = []
    for i in range(17):  # 17 ids over 16 leading digits: two must share the first one
        code, out, err = run(capsys, node_home.path, "offer", "add", "--title", f"Item {i}",
                             "--category", "tools/hand", "--json")
        made.append(json.loads(out)["id"])
    first = made[0]
    code, out, err = run(capsys, node_home.path, "offer", "show", first[:8])
    assert code == 0 and out.startswith(first[:12]) and "Item 0" in out
    code, out, err = run(capsys, node_home.path, "offer", "withdraw", first[:9].upper())
    assert code == 0 and "withdrawn" in out
    code, _, err = run(capsys, node_home.path, "offer", "show", first[:7])
    one_line_error(code, err, "at least 8")
    code, _, err = run(capsys, node_home.path, "claim", "accept", first[:8])
    one_line_error(code, err, "no claim")
    # Two ids sharing a prefix: the error lists them, nothing is written.
    digit = next(d for d in "0123456789abcdef" if sum(m.startswith(d) for m in made) > 1)
    monkeypatch.setattr(ids, "MIN_PREFIX", 1)
    count = node_home.entry_count()
    code, _, err = run(capsys, node_home.path, "offer", "withdraw", digit)
    one_line_error(code, err, "matches several", "give more digits")
    assert sum(m[:16] in err for m in made if m.startswith(digit)) >= 2
    assert node_home.entry_count() == count


@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1:8080/api/v1", ["base URL", "'http://127.0.0.1:8080'"]),
    ("http://127.0.0.1:8080/federation/v1/", ["base URL"]),
    ("ftp://127.0.0.1", ["http://"]),
    ("http://u:p@127.0.0.1", ["credentials"]),
])
def test_peer_add_wants_the_base_url(node_home, capsys, url, words):
    peer = Identity.generate().node_id
    count = node_home.entry_count()
    code, _, err = run(capsys, node_home.path, "peer", "add", peer, url)
    one_line_error(code, err, *words)
    assert node_home.entry_count() == count


def test_peer_list_shows_only_a_current_error_in_words(node_home, capsys):
    peer = Identity.generate()
    code, *_ = run(capsys, node_home.path, "peer", "add", peer.node_id, "http://127.0.0.1:9")
    assert code == 0
    db = sqlite3.connect(node_home.config.db_path)
    db.execute("INSERT INTO peer_state (peer, last_success, last_error, last_error_at) "
               "VALUES (?, 2000, 'state: the peer answered HTTP 503: busy', 1000)",
               (peer.public,))
    db.commit()
    code, out, _ = run(capsys, node_home.path, "peer", "list")
    assert code == 0 and "last error" not in out  # older than the last success
    db.execute("UPDATE peer_state SET last_error_at = 3000")
    db.commit()
    code, out, _ = run(capsys, node_home.path, "peer", "list")
    assert "last error 1970-01-01T00:00:03.000Z: state: the peer answered HTTP 503: busy" in out
    db.close()
