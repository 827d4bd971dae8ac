"""Propagation: how long until an offer posted on one node is held by every node.

N nodes in a random connected graph (a spanning tree plus random links, `degree` links
per node on average), hops = N so every node replicates every log. Two variants on the
same graph: every node in this process (one shared event loop), and every node in its
own `aidmesh run` process. Arrival is read from each node's SQLite file (read-only).
Used by bench/sync.py (c); runs alone too:
    python -m bench.propagation [--nodes 50] [--posts 30] [--variant inproc|procs|both]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import free_port, start_node_process
from node.home import initialise

INTERVAL_S = 5.0  # the periodic round; notify should make it irrelevant here


def graph(n: int, degree: int, seed: int) -> set[tuple[int, int]]:
    rng = random.Random(seed)
    edges: set[tuple[int, int]] = set()
    order = list(range(n))
    rng.shuffle(order)
    for i in range(1, n):  # a random spanning tree keeps the graph connected
        a, b = sorted((order[i], order[rng.randrange(i)]))
        edges.add((a, b))
    while len(edges) < n * degree // 2:
        a, b = sorted(rng.sample(range(n), 2))
        edges.add((a, b))
    return edges


async def _start_inproc(home: Path, port: int, n: int) -> tuple[Any, Any]:
    from aiohttp import web

    from node.app import create_app

    done = initialise(home)
    done.config.gossip_interval_s = INTERVAL_S
    done.config.hops = n
    app = create_app(done.config, done.identity)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return done, runner


class _Failures(logging.Handler):
    """Counts the gossip's failed rounds by reason (in-process nodes only): what delays
    propagation shows here."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = json.loads(record.getMessage())
        except ValueError:
            return
        self.reasons[f"{event.get('event')}: {str(event.get('error'))[:70]}"] += 1


def _held(paths: list[Path], oid: bytes) -> int:
    seen = 0
    for path in paths:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            seen += conn.execute("SELECT count(*) FROM entries WHERE id = ?",
                                 (oid,)).fetchone()[0]
        finally:
            conn.close()
    return seen


async def run(tmp: Path, n: int, degree: int, posts: int, variant: str) -> list[float]:
    """Times (s) until each of ``posts`` offers was held by all ``n`` nodes."""
    rng = random.Random(n)
    edges = graph(n, degree, n)
    ports = [free_port() for _ in range(n)]
    root = tmp / f"prop-{variant}"
    stops: list[Any] = []
    dones = []
    failures = _Failures()
    logging.getLogger("aidmesh.gossip").addHandler(failures)
    try:
        for i in range(n):
            if variant == "inproc":
                done, runner = await _start_inproc(root / f"p{i}", ports[i], n)
                stops.append(runner.cleanup)
            else:
                done = initialise(root / f"p{i}")
                done.config.gossip_interval_s = INTERVAL_S
                done.config.hops = n
                done.config.config_path.write_text(done.config.to_toml())
                proc = await asyncio.to_thread(start_node_process, root / f"p{i}", ports[i])
                stops.append(proc)
            dones.append(done)
        paths = [d.config.db_path for d in dones]
        async with aiohttp.ClientSession() as s:
            async def api(i: int, method: str, path: str, body: Any = None) -> Any:
                async with s.request(method, f"http://127.0.0.1:{ports[i]}{path}", json=body,
                                     headers={"Authorization":
                                              f"Bearer {dones[i].admin_token}"}) as r:
                    return await r.json(content_type=None)

            for a, b in sorted(edges):
                for x, y in ((a, b), (b, a)):
                    await api(x, "POST", "/api/v1/peers", {
                        "id": dones[y].identity.node_id, "url": f"http://127.0.0.1:{ports[y]}"})
            # the trust entries themselves must have spread: wait for the last one
            trust_ids = []
            for i in range(n):
                logs = await api(i, "GET", "/api/v1/logs")
                trust_ids += [bytes.fromhex(x["head"]) for x in logs["logs"]
                              if x["author"] == dones[i].identity.node_id]
            deadline = time.perf_counter() + 120
            while time.perf_counter() < deadline:
                if all([await asyncio.to_thread(_held, paths, t) == n for t in trust_ids]):
                    break
                await asyncio.sleep(0.5)
            times = []
            for _ in range(posts):
                origin = rng.randrange(n)
                started = time.perf_counter()
                body = await api(origin, "POST", "/api/v1/offers", {
                    "title": "soup for 30", "category": "food/meals", "action": "transfer"})
                oid = bytes.fromhex(body["id"])
                deadline = time.perf_counter() + 30
                while (seen := await asyncio.to_thread(_held, paths, oid)) < n:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"offer reached only {seen} of {n} nodes in 30 s")
                    await asyncio.sleep(0.005)
                times.append(time.perf_counter() - started)
                await asyncio.sleep(0.2)  # posts apart, as people make them
        if failures.reasons:
            print(f"    ({variant}: failed rounds: {dict(failures.reasons.most_common(4))})")
        return times
    finally:
        logging.getLogger("aidmesh.gossip").removeHandler(failures)
        for stop in stops:
            if callable(stop):
                await stop()
            else:
                stop.terminate()
        for stop in stops:
            if not callable(stop):
                await asyncio.to_thread(stop.wait)


def report(label: str, n: int, links: int, times: list[float]) -> None:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"    {label:<13} {n} nodes, {links} links: offer on all nodes p50 "
          f"{statistics.median(times) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {times[-1] * 1000:.0f} ms over {len(times)} posts", flush=True)


async def bench(tmp: Path, n: int, degree: int, posts: int, variant: str = "both") -> None:
    links = len(graph(n, degree, n))
    if variant in ("both", "inproc"):
        report("one process", n, links, await run(tmp, n, degree, posts, "inproc"))
    if variant in ("both", "procs"):
        report("N processes", n, links, await run(tmp, n, degree, posts, "procs"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--variant", choices=["inproc", "procs", "both"], default="both")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aidmesh-bench-"))
    try:
        print("aidmesh propagation benchmark (figures, not pass/fail)")
        await bench(tmp, args.nodes, 3, args.posts, args.variant)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
