"""Writes made by the CLI while nodes run (separate processes) reach peers and listeners.

Two real `aidmesh run` processes on 127.0.0.1, peered by `aidmesh peer add` while they
run; the gossip interval is set to a minute, so an entry arriving within seconds proves
the running node noticed the CLI's commit and notified its peer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from conftest import NodeHome, wait_for

from node.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROPAGATION_S = 3.0  # the promise: a CLI write is on the peer within 3 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    home: NodeHome
    proc: asyncio.subprocess.Process
    url: str
    http: aiohttp.ClientSession

    async def get(self, path: str, role: str = "admin", token: str | None = None
                  ) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token or self.home.token(role)}"}
        async with self.http.get(self.url + path, headers=headers) as r:
            return r.status, await r.json(content_type=None)


@asynccontextmanager
async def running(home: NodeHome, http: aiohttp.ClientSession, tmp: Path
                  ) -> AsyncIterator[Running]:
    port = free_port()
    log = (tmp / f"{home.path.name}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "run", "--home", str(home.path), "--port", str(port),
        stdout=log, stderr=log, cwd=ROOT)
    node = Running(home, proc, f"http://127.0.0.1:{port}", http)

    async def healthy() -> bool:
        try:
            async with http.get(f"{node.url}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientConnectionError:
            assert proc.returncode is None, (tmp / f"{home.path.name}.log").read_text()
            return False

    try:
        await wait_for(healthy, timeout=30, what=f"{home.path.name} to serve")
        yield node
    finally:
        if proc.returncode is None:
            proc.send_signal(2)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


def cli(home: NodeHome, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = main([*args, "--home", str(home.path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


async def test_cli_writes_reach_the_peer_and_the_event_stream(make_home, tmp_path, capsys):
    a = make_home("a", gossip_interval_s=60.0)
    b = make_home("b", gossip_interval_s=60.0)
    async with aiohttp.ClientSession() as http, running(a, http, tmp_path) as na, \
            running(b, http, tmp_path) as nb:
        # Peering through the CLI while both run: each node picks up its new peer.
        cli(a, "peer", "add", b.node_id, nb.url, capsys=capsys)
        cli(b, "peer", "add", a.node_id, na.url, capsys=capsys)
        await wait_for(lambda: _has_log(nb, a.node_id), timeout=15,
                       what="b to pull a's log after peering")
        # Listen on a's event stream before the CLI writes.
        events = await http.get(f"{na.url}/api/v1/events?types=listing",
                                headers={"Authorization": f"Bearer {a.token('reader')}"})
        offer = json.loads(cli(a, "offer", "add", "--title", "Rye loaves", "--category",
                               "food/bread", "--quantity", "10 loaves", "--json",
                               capsys=capsys))
        written = time.monotonic()
        await wait_for(lambda: _status(nb, f"/api/v1/offers/{offer['id']}", 200),
                       timeout=PROPAGATION_S, what="the CLI's offer on the peer")
        took = {"offer": time.monotonic() - written}
        async with asyncio.timeout(PROPAGATION_S):
            while True:
                line = (await events.content.readline()).decode()
                if line.startswith("data:") and offer["id"] in line:
                    break
        events.close()

        # b claims part of the offer through its API; a accepts it with the CLI by prefix.
        async with http.post(f"{nb.url}/api/v1/offers/{offer['id']}/claims",
                             json={"quantity": 4},
                             headers={"Authorization": f"Bearer {b.token('coordinator')}"}
                             ) as r:
            assert r.status == 201, await r.text()
            claim = (await r.json())["id"]
        await wait_for(lambda: _status(na, f"/api/v1/claims/{claim}", 200),
                       timeout=PROPAGATION_S, what="the claim on the owner's node")
        out = cli(a, "claim", "accept", claim[:10], capsys=capsys)
        assert f"accepted claim {claim[:12]}" in out and "Rye loaves" in out
        written = time.monotonic()

        async def accepted() -> bool:
            status, body = await nb.get(f"/api/v1/claims/{claim}")
            return status == 200 and body["status"] == "accepted"

        await wait_for(accepted, timeout=PROPAGATION_S, what="the CLI's accept on the peer")
        took["accept"] = time.monotonic() - written
        # a's peer list (read by another process) is not behind once b's log is in.
        await wait_for(lambda: _peer_behind(a, capsys) == "0", timeout=15,
                       what="peer list to say behind 0")
    print("on the peer after the CLI wrote: " + ", ".join(f"{k} {v:.2f} s"
                                                          for k, v in took.items()))


async def test_a_token_revoked_by_the_cli_stops_working_at_once(make_home, tmp_path,
                                                                capsys):
    a = make_home("a")
    async with aiohttp.ClientSession() as http, running(a, http, tmp_path) as na:
        token = cli(a, "token", "create", "--role", "reader", capsys=capsys).splitlines()[-1]
        assert (await na.get("/api/v1/offers", token=token))[0] == 200
        token_id = token.split("_")[1]
        cli(a, "token", "revoke", token_id, capsys=capsys)
        await wait_for(lambda: _status(na, "/api/v1/offers", 401, token=token), timeout=2,
                       what="the revoked token to be refused")


async def test_a_second_run_on_the_same_data_dir_refuses(make_home, tmp_path, capsys):
    a = make_home("a")
    async with aiohttp.ClientSession() as http, running(a, http, tmp_path) as na:
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli", "--home", str(a.path), "run", "--port",
            str(free_port()), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT)
        _, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 1
        message = err.decode()
        assert message.startswith("aidmesh: error:") and f"pid {na.proc.pid}" in message
        assert "Traceback" not in message
        assert (await na.get("/healthz"))[0] == 200  # the first one is unaffected


async def _has_log(node: Running, author: str) -> bool:
    status, body = await node.get("/api/v1/logs")
    return status == 200 and any(log["author"] == author for log in body["logs"])


async def _status(node: Running, path: str, expect: int, token: str | None = None) -> bool:
    return (await node.get(path, token=token))[0] == expect


def _peer_behind(home: NodeHome, capsys: pytest.CaptureFixture[str]) -> str:
    out = cli(home, "peer", "list", "--json", capsys=capsys)
    (peer,) = [json.loads(line) for line in out.splitlines()]
    return str(peer["entries_behind"])
