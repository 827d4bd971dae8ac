"""Latency of honest requests while the edge is under a slow-request attack.

    python -m bench.edge [--slow 1000] [--endless 50] [--requests 300] [--quick]

Starts `aidmesh run` in another process (file limit 1,024), then times GET /healthz and
an authenticated GET /api/v1/offers from 127.0.0.1: first with no attack (the baseline,
same run), then while --slow connections from 127.0.0.2 send their headers a byte at a
time and --endless connections from 127.0.0.3 send chunked bodies that never end. Prints
p50 / p99 / max of both and their ratio, and how many attacking connections the node
closed and how fast. It never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # allow `python bench/edge.py` without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench._common import free_port
from node.home import initialise
from node.services.ledger import open_ledger
from node.services.tokens import create_token
from node.store.ledger import now_ms


async def held_open(port: int, source: str, first: bytes, trickle: bytes,
                    stop: asyncio.Event) -> float | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0))
    except OSError:
        return None
    started = time.monotonic()

    async def drip() -> None:
        try:
            writer.write(first)
            i = 0
            while not stop.is_set():
                await asyncio.sleep(0.25)
                writer.write(trickle[i % len(trickle):i % len(trickle) + 1])
                i += 1
                await writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    dripping = asyncio.create_task(drip())
    try:
        while await reader.read(4096):
            pass
    except ConnectionError:
        pass
    finally:
        dripping.cancel()
        writer.close()
    return time.monotonic() - started


async def timed(http: aiohttp.ClientSession, base: str, token: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        path, headers = (("/healthz", {}) if i % 2 else
                         ("/api/v1/offers", {"Authorization": f"Bearer {token}"}))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(10), http.get(base + path, headers=headers) as r:
                await r.read()
                ok = r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        out.append((time.perf_counter() - started) if ok else float("inf"))
        await asyncio.sleep(0.01)
    return out


def figures(name: str, samples: list[float]) -> tuple[float, str]:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return p99, (f"  {name:<16} p50 {statistics.median(ms):8.2f} ms   p99 {p99:8.2f} ms   "
                 f"max {ms[-1]:8.2f} ms   failed {sum(s == float('inf') for s in ms)}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "node"
        done = initialise(home)
        done.config.header_timeout_s, done.config.body_timeout_s = 2.0, 3.0
        done.config.config_path.write_text(done.config.to_toml())
        with open_ledger(done.config.db_path, done.identity) as ledger:
            _, token = ledger.transaction(lambda c: create_token(c, "reader", "b", now_ms()))
            _, writer = ledger.transaction(
                lambda c: create_token(c, "coordinator", "w", now_ms()))
        port = free_port()

        def limit_files() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli", "run", "--home", str(home), "--port", str(port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=limit_files)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        async with http.get(base + "/healthz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
                quiet = await timed(http, base, token, args.requests)
                stop = asyncio.Event()
                slow = [held_open(port, "127.0.0.2", b"GET /healthz HTTP/1.1\r\nHo",
                                  b"st: x\r\nX-Slow: yyyy", stop) for _ in range(args.slow)]
                chunked = (b"POST /api/v1/offers HTTP/1.1\r\nHost: x\r\nAuthorization: "
                           b"Bearer " + writer.encode() + b"\r\nContent-Type: "
                           b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
                endless = [held_open(port, "127.0.0.3", chunked, b"1\r\n \r\n", stop)
                           for _ in range(args.endless)]
                attack = asyncio.gather(*slow, *endless)
                await asyncio.sleep(0.5)
                loud = await timed(http, base, token, args.requests)
                stop.set()
                held = await asyncio.wait_for(attack, 60)
        finally:
            proc.send_signal(2)
            await proc.wait()
    p_quiet, line_quiet = figures("no attack", quiet)
    p_loud, line_loud = figures("under attack", loud)
    closed = [h for h in held if h is not None]
    print(f"edge: {args.requests} honest GETs (healthz and offers, alternating), node limited "
          f"to 1,024 files; attack: {args.slow} slow-header + {args.endless} endless-body "
          "connections")
    print(line_quiet)
    print(line_loud)
    print(f"  p99 under attack / without: x{p_loud / p_quiet:.2f}")
    print(f"  attacking connections opened {len(closed)}, closed by the node: max held "
          f"{max(closed):.2f} s, median {statistics.median(closed):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--endless", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="fewer honest requests")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.requests = 100
    asyncio.run(main(arguments))
