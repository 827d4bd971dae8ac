"""kill -9 at any moment loses nothing and folds nothing twice (real processes).

A source node serves ten authors' logs (offers, needs, updates and withdrawals); a fresh
node pulls them in its own `aidmesh run` process and is killed with SIGKILL again and
again while it stores and folds. After it finally catches up: every entry is stored, the
projector's cursor is at the end, each listing was announced exactly once, and listings
and matches are exactly what a fold from scratch of the same entries gives.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import sys
from pathlib import Path

import aiohttp
from conftest import make_log
from test_cross_process import ROOT, free_port

from node.services.ledger import open_ledger
from protocol import Identity
from protocol.taxonomy import STARTER_TAXONOMY

AUTHORS = 8
PER_AUTHOR = 150
KILLS = 5
CATEGORIES = sorted(STARTER_TAXONOMY)


def _content(rng: random.Random, i: int, kind: str) -> dict:
    return {"title": f"{kind} {i}", "category": rng.choice(CATEGORIES), "action": "transfer",
            "quantity": {"value": str(rng.randint(1, 9)), "unit": "items"}}


def _logs(rng: random.Random) -> list[tuple[Identity, list]]:
    out = []
    for _ in range(AUTHORS):
        ident = Identity.from_secret(rng.randbytes(32))
        items: list = []
        for i in range(PER_AUTHOR):
            kind = "need" if i % 7 == 0 else "offer"
            items.append((kind, _content(rng, i, kind)))
        out.append((ident, items))
    return out


def _with_changes(ident: Identity, items: list) -> list:
    """The author's log: its listings, then an update and a withdrawal of some of them."""
    entries = make_log(ident, items)
    changes = []
    for e in entries[::25]:
        changes.append(("update", {"target": e.id, "set": {"title": "changed"}}))
    for e in entries[5::40]:
        changes.append(("withdraw", {"target": e.id}))
    return entries + make_log(ident, changes, previous=entries[-1])


async def _start(home, port: int, tmp: Path) -> asyncio.subprocess.Process:
    log = (tmp / f"{home.path.name}.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "run", "--home", str(home.path), "--port", str(port),
        stdout=log, stderr=log, cwd=ROOT)
    log.close()
    return proc


def _progress(home) -> tuple[int, int]:
    """(entries stored, entries past the projector's cursor) read from the file."""
    try:
        conn = sqlite3.connect(f"file:{home.config.db_path}?mode=ro", uri=True, timeout=5)
        try:
            stored = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
            lag = conn.execute("SELECT count(*) FROM entries WHERE rowid > "
                               "(SELECT cursor FROM projector)").fetchone()[0]
            return stored, lag
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0, 0


def _state(path: Path) -> tuple[list, list]:
    conn = sqlite3.connect(path)
    try:
        listings = conn.execute(
            "SELECT id, author, kind, title, category, withdrawn, available, updated "
            "FROM listings ORDER BY id").fetchall()
        matches = conn.execute("SELECT need, offer FROM matches ORDER BY need, offer").fetchall()
        return listings, matches
    finally:
        conn.close()


async def test_kill_9_while_pulling_and_folding_loses_and_repeats_nothing(make_home, tmp_path):
    rng = random.Random(12)
    source, puller = make_home("source", hops=2), make_home("puller", gossip_interval_s=1)
    s_port, p_port = free_port(), free_port()
    logs = [(ident, _with_changes(ident, items)) for ident, items in _logs(rng)]
    total = sum(len(entries) for _, entries in logs)
    ledger = source.ledger()
    try:
        def fill(c):
            ledger.append_local(c, "trust", {"peer": puller.identity.public,
                                             "url": f"http://127.0.0.1:{p_port}"})
            for ident, entries in logs:
                ledger.append_local(c, "trust", {"peer": ident.public,
                                                 "url": "http://127.0.0.1:9/"})
                ledger.ingest(c, ident.public, entries)

        ledger.transaction(fill)
    finally:
        ledger.close()
    ledger = puller.ledger()
    try:
        ledger.transaction(lambda c: ledger.append_local(
            c, "trust", {"peer": source.identity.public, "url": f"http://127.0.0.1:{s_port}"}))
    finally:
        ledger.close()
    own = puller.entry_count()
    want = own + total + AUTHORS + 2  # + the source's log: profile and trusts
    src = await _start(source, s_port, tmp_path)
    kills: list[tuple[int, int]] = []
    procs = [src]
    try:
        for k in range(KILLS):
            proc = await _start(puller, p_port, tmp_path)
            procs.append(proc)
            target = want * (k + 1) // (KILLS + 2)
            while True:
                stored, lag = _progress(puller)
                if stored >= target or stored >= want:
                    break
                assert proc.returncode is None, (tmp_path / "puller.log").read_text()
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0, 0.2))
            kills.append(_progress(puller))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        proc = await _start(puller, p_port, tmp_path)
        procs.append(proc)
        async with aiohttp.ClientSession() as http:
            for _ in range(6000):
                stored, lag = _progress(puller)
                if stored >= want and lag == 0:
                    break
                assert proc.returncode is None, (tmp_path / "puller.log").read_text()
                await asyncio.sleep(0.01)
            async with http.get(f"http://127.0.0.1:{p_port}/healthz") as r:
                health = await r.json()
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGINT)
                await asyncio.wait_for(p.wait(), 20)
    assert _progress(puller) == (want, 0), kills
    assert health["projector"]["lag_entries"] == 0
    # Each listing announced once: a fold repeated after a crash would announce it again.
    created: dict[str, int] = {}
    for (data,) in puller.query("SELECT data FROM events WHERE type = 'listing'"):
        event = json.loads(data)
        if event["change"] == "created":
            created[event["id"]] = created.get(event["id"], 0) + 1
    listing_ids = {e.id.hex() for _, entries in logs for e in entries
                   if e.kind in ("offer", "need")}
    assert set(created) == listing_ids and set(created.values()) == {1}
    # The state equals a fold from scratch of the same stored entries.
    copy = tmp_path / "rebuilt.db"
    with sqlite3.connect(puller.config.db_path) as src_conn, sqlite3.connect(copy) as dst:
        src_conn.backup(dst)
    folded = _state(puller.config.db_path)
    rebuilt = open_ledger(copy, puller.identity)
    try:
        rebuilt.rebuild()
    finally:
        rebuilt.close()
    again = _state(copy)
    assert folded[0] == again[0]
    assert folded[1] == again[1] and folded[1], "matches differ from a fold from scratch"
    assert len(folded[0]) == len(listing_ids)
