"""Sync benchmark: (a) bulk pull of 100k entries, (b) in-sync round cost, (c) propagation.

Prints figures and ratios against baselines measured in the same run. Not a test.
(a) reports when the pulled entries are durable (stored, heads moved) and when they are
all searchable (the projector folded them), beside the raw pipeline baseline. (c) runs
the coalition twice: every node in this process, then every node in its own process.
    python -m bench.sync [--authors 100 --per-author 1000] [--nodes 50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench import propagation
from bench._common import free_port, offer_content, start_node_process
from node.app import create_app
from node.federation.httpsig import sign_request
from node.home import initialise
from node.runtime import NODE
from node.services.ledger import open_ledger
from protocol import Identity, create_entry
from protocol.identity import sha256


def build_source(home: Path, authors: int, per_author: int, puller: Identity,
                 puller_url: str) -> tuple[list[tuple[bytes, bytes]], Identity]:
    """A node whose log trusts `authors` authors, each with `per_author` offers."""
    done = initialise(home, name="source")
    rng = random.Random(7)
    frames: list[tuple[bytes, bytes]] = []
    ledger = open_ledger(done.config.db_path, done.identity)
    try:
        idents = [Identity.from_secret(rng.randbytes(32)) for _ in range(authors)]

        def trust_all(c):
            for ident in idents:
                ledger.append_local(c, "trust", {"peer": ident.public,
                                                 "url": "http://127.0.0.1:9/"})
            ledger.append_local(c, "trust", {"peer": puller.public, "url": puller_url})

        ledger.transaction(trust_all)
        ts = 1_795_000_000_000
        for ident in idents:
            prev = None
            entries = []
            for i in range(per_author):
                prev = create_entry(ident, "offer", offer_content(rng), previous=prev,
                                    timestamp=ts + i)
                entries.append(prev)
                frames.append((prev.raw, prev.payload))
            ledger.transaction(lambda c, a=ident.public, e=entries: ledger.ingest(c, a, e))
    finally:
        ledger.close()
    return frames, done.identity


def raw_pipeline(frames: list[tuple[bytes, bytes]], path: Path) -> float:
    """Baseline: decode + hash + batched SQLite insert, one process, no HTTP, no checks."""
    import msgpack

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE e (author BLOB, seq INT, id BLOB, raw BLOB, payload BLOB, "
                 "PRIMARY KEY (author, seq))")
    started = time.perf_counter()
    for i in range(0, len(frames), 500):
        rows = []
        for raw, payload in frames[i:i + 500]:
            header = msgpack.unpackb(raw[:-64])
            msgpack.unpackb(payload)
            rows.append((header["author"], header["seq"], sha256(raw), raw, payload))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(frames) / elapsed


async def start_inproc(home: Path, port: int, interval: float = 30.0, done=None,
                       hops: int = 2):
    done = done or initialise(home)
    done.config.gossip_interval_s = interval
    done.config.hops = hops
    app = create_app(done.config, done.identity)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return done, app, runner


async def bench_pull(tmp: Path, authors: int, per_author: int) -> None:
    puller_home = tmp / "puller"
    puller_port, source_port = free_port(), free_port()
    puller_done = initialise(puller_home, name="puller")
    print(f"(a) building source: {authors} authors x {per_author} offers ...", flush=True)
    frames, source_id = build_source(tmp / "source", authors, per_author,
                                     puller_done.identity, f"http://127.0.0.1:{puller_port}")
    total = len(frames)
    base_rate = raw_pipeline(frames, tmp / "raw.db")
    proc = start_node_process(tmp / "source", source_port)
    try:
        done, app, runner = await start_inproc(puller_home, puller_port, done=puller_done)
        node = app[NODE]
        started = time.perf_counter()
        async with aiohttp.ClientSession() as s:
            await s.post(f"http://127.0.0.1:{puller_port}/api/v1/peers",
                         json={"id": source_id.node_id,
                               "url": f"http://127.0.0.1:{source_port}"},
                         headers={"Authorization": f"Bearer {done.admin_token}"})
        want = total + authors + 4  # offers + both nodes' own logs (profile + trusts)
        while True:
            have = await node.store.read(lambda c: c.execute(
                "SELECT coalesce(sum(seq), 0) FROM heads").fetchone()[0])
            if have >= want:
                break
            await asyncio.sleep(0.02)
        durable = time.perf_counter() - started
        await node.store.caught_up()
        searchable = time.perf_counter() - started
        found = await node.store.read(lambda c: c.execute(
            "SELECT count(*) FROM listings_fts WHERE listings_fts MATCH 'share'").fetchone()[0])
        await runner.cleanup()
    finally:
        proc.terminate()
        proc.wait()
    rate, srate = total / durable, total / searchable
    print(f"    pulled {total} entries over loopback HTTP: durable in {durable:.2f} s, all "
          f"searchable in {searchable:.2f} s ({found} found by a search for 'share')")
    print(f"    {'sync pull, durable (verified, stored)':<44} {rate:>10,.0f} entries/s")
    print(f"    {'sync pull, searchable (projected)':<44} {srate:>10,.0f} entries/s")
    print(f"    {'raw pipeline baseline (decode+hash+insert)':<44} {base_rate:>10,.0f} entries/s")
    print(f"    {'ratio durable / raw':<44} {rate / base_rate:>10.2f}")
    print(f"    {'ratio searchable time / durable time':<44} {searchable / durable:>10.2f}")
    print(f"    {'ratio durable / Hypercore anchor (15k/s)':<44} {rate / 15000:>10.2f}")


async def bench_insync(tmp: Path, logs: int) -> None:
    """Bytes and time of an in-sync round between two nodes holding `logs` logs."""
    a_home, b_home = tmp / f"a{logs}", tmp / f"b{logs}"
    a_port, b_port = free_port(), free_port()
    a_done, b_done = initialise(a_home), initialise(b_home)
    rng = random.Random(logs)
    ledger = open_ledger(b_done.config.db_path, b_done.identity)
    try:
        # B peers with A and with a hub whose log trusts `logs` authors (2 hops from B).
        hub = Identity.from_secret(rng.randbytes(32))
        idents = [Identity.from_secret(rng.randbytes(32)) for _ in range(logs)]

        def fill(c):
            ledger.append_local(c, "trust", {"peer": a_done.identity.public,
                                             "url": f"http://127.0.0.1:{a_port}"})
            ledger.append_local(c, "trust", {"peer": hub.public, "url": "http://127.0.0.1:9/"})
            prev = None
            hub_log = []
            for ident in idents:
                prev = create_entry(hub, "trust", {"peer": ident.public,
                                                   "url": "http://127.0.0.1:9/"}, previous=prev)
                hub_log.append(prev)
                ledger.ingest(c, ident.public, [create_entry(ident, "offer",
                                                             offer_content(rng))])
            ledger.ingest(c, hub.public, hub_log)

        ledger.transaction(fill)
    finally:
        ledger.close()
    _, _, b_runner = await start_inproc(b_home, b_port, done=b_done)
    url = f"http://127.0.0.1:{b_port}/federation/v1/state"
    async with aiohttp.ClientSession() as s:
        # first round: full state
        headers = sign_request(a_done.identity, "GET", url, None)
        async with s.get(url, headers=headers) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"state: HTTP {r.status}: {body[:300]!r}")
            etag = r.headers["ETag"]
        full = len(body)
        times, sizes = [], []
        for _ in range(30):
            await asyncio.sleep(0.11)  # stay under the per-peer rate, which paces bursts
            headers = sign_request(a_done.identity, "GET", url, None,
                                   {"If-None-Match": etag})
            req_bytes = len(f"GET /federation/v1/state HTTP/1.1\r\nHost: 127.0.0.1:{b_port}\r\n")
            req_bytes += sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2
            t = time.perf_counter()
            async with s.get(url, headers=headers) as r:
                await r.read()
                assert r.status == 304, r.status
                resp_bytes = len(f"HTTP/1.1 {r.status} {r.reason}\r\n") + sum(
                    len(k) + len(v) + 4 for k, v in r.raw_headers) + 2
            times.append(time.perf_counter() - t)
            sizes.append(req_bytes + resp_bytes)
    await b_runner.cleanup()
    print(f"    {logs:>6} logs: in-sync round {statistics.median(sizes):>5.0f} B "
          f"(request+response), {statistics.median(times) * 1000:6.2f} ms p50; "
          f"full state {full:,} B")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--per-author", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="small sizes, ~30 s")
    parser.add_argument("--only", choices=["a", "b", "c"])
    args = parser.parse_args()
    if args.quick:
        args.authors, args.per_author, args.nodes, args.posts = 20, 200, 8, 10
    tmp = Path(tempfile.mkdtemp(prefix="aidmesh-bench-"))
    try:
        print("aidmesh sync benchmark (figures, not pass/fail)")
        if args.only in (None, "a"):
            await bench_pull(tmp, args.authors, args.per_author)
        if args.only in (None, "b"):
            print("(b) in-sync round")
            for logs in ((100, 1000) if args.quick else (1000, 10000)):
                await bench_insync(tmp, logs)
        if args.only in (None, "c"):
            print("(c) propagation")
            await propagation.bench(tmp, args.nodes, 3, args.posts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
