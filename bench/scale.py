"""Scale of one node: a data dir holding N listings (default 1M offers and needs from 100
authors), then `aidmesh run` on it in its own process.

Reports, each beside a baseline from the same run where one exists:
- build: signed entries stored (durable) and folded by the projector (searchable);
- cold start: process start until /healthz answers;
- search p50/p99 over HTTP for the README's queries (q, category, near + radius, all
  combined), beside the same query straight on SQLite (node.state.query, no HTTP);
- a new need's matches: POST /api/v1/needs (matched in its transaction) p50/p99, beside
  the same POST of a need far from every offer (the box finds no candidate);
- RSS of the node process after the queries; database size on disk.
Figures, not pass/fail.
    python -m bench.scale [--listings 1000000] [--authors 100] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import h3

from bench._common import CITY, free_port, offer_content, start_node_process
from node.home import initialise
from node.services.ledger import open_ledger
from node.state.query import ListingQuery, run
from protocol import Identity, create_entry

QUERIES = [
    ("q=bread", {"q": "bread"}),
    ("category=food", {"category": "food"}),
    ("near+radius_km=5", {"near": h3.latlng_to_cell(*CITY, 8), "radius_km": "5"}),
    ("q+category+near", {"q": "bread", "category": "food",
                         "near": h3.latlng_to_cell(*CITY, 8), "radius_km": "5"}),
]


def build(home: Path, listings: int, authors: int) -> tuple[object, float, float]:
    """Fill a data dir as gossip would: each author's signed log stored first (durable),
    then folded by the projector. Returns (initialised, store s, fold s)."""
    done = initialise(home, name="scale")
    rng = random.Random(11)
    idents = [Identity.from_secret(rng.randbytes(32)) for _ in range(authors)]
    prev: dict[bytes, object] = {}
    ledger = open_ledger(done.config.db_path, done.identity)
    ledger.deferred = True
    ts = 1_795_000_000_000
    t0 = time.perf_counter()
    try:
        chunk = 10_000
        for lo in range(0, listings, chunk):
            pending: dict[bytes, list] = {}
            for i in range(lo, min(listings, lo + chunk)):
                ident = idents[i % authors]
                kind = "need" if i % 10 == 0 else "offer"
                body = offer_content(rng)
                if kind == "need":
                    body.pop("action")
                    body["action"] = "transfer"
                entry = create_entry(ident, kind, body, previous=prev.get(ident.public),
                                     timestamp=ts + i)
                prev[ident.public] = entry
                pending.setdefault(ident.public, []).append(entry)
            ledger.transaction(lambda c, p=pending: [ledger.ingest(c, a, e)
                                                     for a, e in p.items()])
            print(f"\r    stored {min(listings, lo + chunk):,}", end="", flush=True)
        stored = time.perf_counter() - t0
        t0 = time.perf_counter()
        folded = 0
        while n := ledger.transaction(lambda c: ledger.project(c, 20_000)):
            folded += n
            print(f"\r    folded {folded:,}  ", end="", flush=True)
        print()
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return done, stored, time.perf_counter() - t0
    finally:
        ledger.close()


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def direct(db: Path, identity: Identity, params: dict[str, str]) -> float:
    ledger = open_ledger(db, identity)
    try:
        q = ListingQuery(kind="offer", limit=50)
        if "q" in params:
            q.q = params["q"]
        if "category" in params:
            q.category = params["category"]
        if "near" in params:
            q.near = h3.cell_to_latlng(params["near"])
            q.radius_km = int(params["radius_km"])
        t = time.perf_counter()
        run(ledger.conn, q, int(time.time() * 1000))
        return time.perf_counter() - t
    finally:
        ledger.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(done, requests: int) -> None:
    home, port = done.config.home, free_port()
    started = time.perf_counter()
    proc = await asyncio.to_thread(start_node_process, home, port)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {done.admin_token}"}
    try:
        async with aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.01)
            print(f"    {'cold start (process start to /healthz)':<44} "
                  f"{time.perf_counter() - started:>8.2f} s")
            for label, params in QUERIES:
                times, base = [], []
                for _ in range(requests):
                    t = time.perf_counter()
                    async with s.get(f"{url}/api/v1/offers", params=params,
                                     headers=headers) as r:
                        await r.read()
                    times.append(time.perf_counter() - t)
                for _ in range(max(5, requests // 10)):
                    base.append(await asyncio.to_thread(direct, done.config.db_path,
                                                        done.identity, params))
                print(f"    search {label:<36} p50 {_pct(times, 0.5):7.1f} ms, p99 "
                      f"{_pct(times, 0.99):7.1f} ms (direct SQLite p50 "
                      f"{_pct(base, 0.5):6.1f} ms)")
            far = h3.latlng_to_cell(-33.87, 151.21, 8)  # no listing within reach
            for label, area in (("a new need's matches (POST /needs)",
                                 h3.latlng_to_cell(*CITY, 8)),
                                ("baseline: POST a need nothing is near", far)):
                times = []
                for i in range(max(10, requests // 5)):
                    body = {"title": f"need {i}", "category": "food", "action": "transfer",
                            "area": area, "urgency": "high"}
                    t = time.perf_counter()
                    async with s.post(f"{url}/api/v1/needs", json=body, headers=headers) as r:
                        await r.read()
                    times.append(time.perf_counter() - t)
                print(f"    {label:<44} p50 {_pct(times, 0.5):7.1f} ms, p99 "
                      f"{_pct(times, 0.99):7.1f} ms")
            print(f"    {'RSS of the node process':<44} {rss_mb(proc.pid):>8.0f} MB")
    finally:
        proc.terminate()
        proc.wait()
    size = sum(f.stat().st_size for f in home.iterdir() if f.name.startswith("aidmesh.db")
               or f.suffix in (".db", ".db-wal"))
    print(f"    {'database size on disk':<44} {size / 2**20:>8.0f} MB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="50k listings")
    args = parser.parse_args()
    if args.quick:
        args.listings, args.requests = 50_000, 50
    tmp = Path(tempfile.mkdtemp(prefix="aidmesh-bench-"))
    try:
        print(f"aidmesh scale benchmark: {args.listings:,} listings from {args.authors} "
              "authors (figures, not pass/fail)")
        done, stored, folded = build(tmp / "node", args.listings, args.authors)
        print(f"    {'build: stored (durable)':<44} {args.listings / stored:>8,.0f} entries/s")
        print(f"    {'build: folded by the projector':<44} {args.listings / folded:>8,.0f} "
              "entries/s")
        await measure(done, args.requests)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
