"""The edge holds against slow and endless requests (a real `aidmesh run` process).

Attackers connect from 127.0.0.2 and 127.0.0.3, honest clients from 127.0.0.1 (the whole
127.0.0.0/8 is this machine): 1,000 connections that send their headers a byte at a
time and 50 authenticated requests with chunked bodies that never end, against a node
limited to 1,024 file descriptors. /healthz and an API read keep answering, and every
attacking connection is closed within its deadline.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
import time
from pathlib import Path

import aiohttp
from conftest import wait_for

from bench.edge import held_open

ROOT = Path(__file__).resolve().parent.parent
HEADER_S, BODY_S = 2.0, 3.0
SLOW, ENDLESS = 1000, 50
GRACE = 4.0  # beyond a deadline, for a loaded machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_slow_and_endless_requests_do_not_hold_the_node(make_home, tmp_path):
    home = make_home("edge", header_timeout_s=HEADER_S, body_timeout_s=BODY_S)
    token, reader_token = home.token("coordinator"), home.token("reader")
    port = free_port()
    log = (tmp_path / "node.log").open("wb")

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "run", "--home", str(home.path), "--port", str(port),
        stdout=log, stderr=log, cwd=ROOT, preexec_fn=limit_files)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async def answers(path: str, bearer: str | None = None) -> bool:
                headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
                try:
                    async with asyncio.timeout(2.0), http.get(base + path,
                                                              headers=headers) as r:
                        return r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    return False

            await wait_for(lambda: answers("/healthz"), timeout=30, what="the node to serve")
            never = asyncio.Event()  # the attackers go on until the node cuts them off
            slow = [held_open(port, "127.0.0.2", b"GET /healthz HTTP/1.1\r\nHo",
                              b"st: x\r\nX-Slow: " + b"y" * 64, never) for _ in range(SLOW)]
            chunked = (b"POST /api/v1/offers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                       + token.encode() + b"\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
            endless = [held_open(port, "127.0.0.3", chunked, b"1\r\n \r\n", never)
                       for _ in range(ENDLESS)]
            attack = asyncio.gather(*slow, *endless)
            honest = []
            for _ in range(10):  # the node keeps answering while under attack
                await asyncio.sleep(0.3)
                started = time.monotonic()
                assert await answers("/healthz"), "healthz did not answer within 2 s"
                assert await answers("/api/v1/offers", reader_token)
                honest.append(time.monotonic() - started)
            held = await asyncio.wait_for(attack, 60)
    finally:
        proc.send_signal(2)
        await asyncio.wait_for(proc.wait(), 30)
        log.close()
    slow_held = [h for h in held[:SLOW] if h is not None]
    endless_held = [h for h in held[SLOW:] if h is not None]
    assert len(slow_held) == SLOW and len(endless_held) == ENDLESS  # all were accepted...
    assert max(slow_held) < HEADER_S + GRACE, max(slow_held)  # ...and cut off in time
    assert max(endless_held) < BODY_S + HEADER_S + GRACE, max(endless_held)
    print(f"slowest honest pair under attack: {max(honest):.3f} s")
