"""Matching benchmark: match latency, and the cost of matching a new listing at scale.

    python bench/match.py [--sizes 10000,100000] [--samples 200] [--quick]

For each size N (open listings, half offers and half needs, spread over a region about
the size of Germany across the 32 starter categories, 2,000 authors):
  cost     time of node.state.matching.rematch for one new need and one new offer (the listing
           row is inserted first, outside the timing, then rolled back), against a
           brute-force baseline measured in the same run: a Python scan over *all*
           listings, already in memory as dicts, applying the same fit rules
           (matching.fits). Both must find the same matches (checked every sample).
           A second baseline, "scan from SQLite", also reads the listings' match columns
           from the database for each new listing (a matcher with no index at all).
  latency  entry arrival -> match visible: a fitting offer from a new author is ingested
           through the async Store (Ledger.ingest in the writer's group commit, durable
           with synchronous=FULL), then read back from `matches` on a reader connection;
           also when a listener blocked in Store.wait_events (what SSE streams and
           webhook workers do) wakes up.
Listings are inserted straight into the projection table (no signed entries, no
pre-existing rows in `matches`) so that building 100k rows takes seconds. Prints figures
and ratios; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # allow `python bench/match.py` without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h3

from node.services.ledger import open_ledger
from node.state import matching, projection
from node.store.writer import Store
from protocol import Identity, create_entry
from protocol.taxonomy import STARTER_TAXONOMY

REGION = ((47.3, 55.0), (5.9, 15.0))  # lat, lng box
CATEGORIES = list(STARTER_TAXONOMY)
TOP = sorted({c.split("/")[0] for c in CATEGORIES})
NOW = 1_800_000_000_000
MATCH_COLS = ("id", "author", "kind", "category", "available_from", "available_until",
              "lat", "lng", "radius_km", "withdrawn")


def fields(rng: random.Random, kind: str, area: str | None = None,
           category: str | None = None) -> dict:
    if area is None:
        lat = rng.uniform(*REGION[0])
        lng = rng.uniform(*REGION[1])
        area = h3.latlng_to_cell(lat, lng, 8)
    if category is None:
        # a quarter of the needs ask for a whole top-level category ("food")
        category = rng.choice(TOP) if kind == "need" and rng.random() < 0.25 \
            else rng.choice(CATEGORIES)
    out = {"title": f"{kind} {rng.randint(1, 10**6)}", "category": category,
           "action": "transfer", "area": area,
           "available_until": NOW + rng.randint(0, 30 * 86_400_000)}
    if rng.random() < 0.5:
        out["available_from"] = NOW - rng.randint(0, 30 * 86_400_000)
    if kind == "need":
        out["urgency"] = rng.choice(("low", "normal", "high"))
        out["radius_km"] = rng.choice((5, 10, 25))
    else:
        out["quantity"] = {"value": str(rng.randint(1, 20)), "unit": "items"}
    return out


def listing_row(rng: random.Random, kind: str, author: str, seq: int, **kw) -> dict:
    return {"id": rng.randbytes(32).hex(), "author": author, "kind": kind, "seq": seq,
            "local": 0, "ts": NOW, **projection._columns(fields(rng, kind, **kw))}


def build(path: Path, size: int, rng: random.Random) -> list[dict]:
    """A node database with `size` open listings; returns them as dicts for brute force."""
    ledger = open_ledger(path, Identity.generate())
    authors = ["am" + rng.randbytes(32).hex() for _ in range(2000)]
    rows = [listing_row(rng, "offer" if i % 2 else "need", rng.choice(authors), i + 1)
            for i in range(size)]
    try:
        ledger.transaction(lambda c: c.executemany(projection._INSERT_LISTING, rows))
        ledger.conn.execute("ANALYZE")
    finally:
        ledger.close()
    return [{**{k: r.get(k) for k in MATCH_COLS}, "withdrawn": 0} for r in rows]


def brute_force(listings: list[dict], new: dict) -> dict[tuple[str, str], float | None]:
    """Scan every listing in Python with the same fit rules as rematch."""
    found: dict[tuple[str, str], float | None] = {}
    other = "offer" if new["kind"] == "need" else "need"
    for c in listings:
        if c["kind"] != other or c["withdrawn"]:
            continue
        need, offer = (new, c) if new["kind"] == "need" else (c, new)
        ok, distance = matching.fits(need, offer)
        if ok:
            found[(need["id"], offer["id"])] = distance
    return found


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:10.1f} us"


def cost(path: Path, listings: list[dict], samples: int, rng: random.Random) -> dict:
    ledger = open_ledger(path, Identity.generate())
    conn = ledger.conn
    times: dict[str, list[float]] = {"need": [], "offer": []}
    brute: dict[str, list[float]] = {"need": [], "offer": []}
    scan: dict[str, list[float]] = {"need": [], "offer": []}
    cols = ", ".join(MATCH_COLS)
    found: dict[str, int] = {"need": 0, "offer": 0}
    try:
        for i in range(samples * 2):
            kind = "need" if i % 2 == 0 else "offer"
            row = listing_row(rng, kind, "am" + rng.randbytes(32).hex(), 1)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(projection._INSERT_LISTING, row)
                t0 = time.perf_counter()
                matching.rematch(conn, row["id"], NOW)
                times[kind].append(time.perf_counter() - t0)
                got = {(r[0], r[1]) for r in conn.execute(
                    "SELECT need, offer FROM matches WHERE need = ? OR offer = ?",
                    (row["id"], row["id"]))}
            finally:
                conn.execute("ROLLBACK")
            new = {k: row.get(k) for k in MATCH_COLS} | {"withdrawn": 0}
            t0 = time.perf_counter()
            expect = brute_force(listings, new)
            brute[kind].append(time.perf_counter() - t0)
            if got != set(expect):
                raise SystemExit(f"rematch and brute force disagree for a new {kind}: "
                                 f"{len(got)} vs {len(expect)} matches")
            found[kind] += len(got)
            t0 = time.perf_counter()
            rows = [dict(r) for r in conn.execute(f"SELECT {cols} FROM listings")]
            brute_force(rows, new)
            scan[kind].append(time.perf_counter() - t0)
    finally:
        ledger.close()
    return {"times": times, "brute": brute, "scan": scan, "found": found}


async def latency(path: Path, listings: list[dict], samples: int, rng: random.Random
                  ) -> tuple[list[float], list[float]]:
    store = Store(open_ledger(path, Identity.generate()))
    await store.start()
    needs = [r for r in listings if r["kind"] == "need"]
    visible: list[float] = []
    woken: list[float] = []
    try:
        for _ in range(samples):
            need = rng.choice(needs)
            author = Identity.generate()
            # an offer in the need's category and H3 cell: it fits if the windows overlap
            content = fields(rng, "offer", area=h3.latlng_to_cell(need["lat"], need["lng"], 8),
                             category=need["category"])
            content.pop("available_from", None)
            content["available_until"] = NOW + 60 * 86_400_000
            entry = create_entry(author, "offer", content, timestamp=NOW)
            offer_id = entry.id.hex()
            seq = store.events_seq
            woke: list[float] = []

            async def listen(seq: int = seq, woke: list[float] = woke) -> None:
                await store.wait_events(seq, timeout=10)
                woke.append(time.perf_counter())

            listener = asyncio.create_task(listen())
            await asyncio.sleep(0)  # the listener is now blocked in wait_events
            t0 = time.perf_counter()
            await store.write(lambda c, a=author.public, e=entry: store.ledger.ingest(c, a, [e]))
            row = await store.read(lambda c, o=offer_id: c.execute(
                "SELECT count(*) FROM matches WHERE offer = ?", (o,)).fetchone()[0])
            visible.append(time.perf_counter() - t0)
            await listener
            woken.append(woke[0] - t0)
            if not row:
                # the need's window may have closed before NOW; that sample has no match
                visible.pop()
                woken.pop()
    finally:
        await store.close()
    return visible, woken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="comma-separated numbers of open listings")
    parser.add_argument("--samples", type=int, default=100,
                        help="new needs and new offers timed per size (each)")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--quick", action="store_true",
                        help="sizes 2000,10000 and 30 samples: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.samples, args.latency_samples = "2000,10000", 30, 30
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cpus, {platform.machine()}")
    print(f"listings: half offers, half needs; {len(CATEGORIES)} categories; region "
          f"{REGION[0][0]}-{REGION[0][1]} N x {REGION[1][0]}-{REGION[1][1]} E; need radius "
          f"5/10/25 km")
    for size in sizes:
        rng = random.Random(size)
        with tempfile.TemporaryDirectory(prefix="aidmesh-bench-match-") as tmp:
            path = Path(tmp) / "node.sqlite"
            t0 = time.perf_counter()
            listings = build(path, size, rng)
            print(f"\n== {size:,} open listings (built in {time.perf_counter() - t0:.1f} s)")
            result = cost(path, listings, args.samples, rng)
            print(f"matching cost per new listing ({args.samples} of each kind; median / "
                  f"p95):")
            for kind in ("need", "offer"):
                inc, brute = result["times"][kind], result["brute"][kind]
                scan = result["scan"][kind]
                med_i, med_b, med_s = (statistics.median(x) for x in (inc, brute, scan))
                print(f"  new {kind:5} rematch        {fmt_us(med_i)} / {fmt_us(pct(inc, 0.95))}"
                      f"   ({result['found'][kind] / args.samples:.2f} matches per listing)")
                print(f"             brute, in memory {fmt_us(med_b)} / "
                      f"{fmt_us(pct(brute, 0.95))}   brute/rematch x{med_b / med_i:,.2f}")
                print(f"             scan from SQLite {fmt_us(med_s)} / "
                      f"{fmt_us(pct(scan, 0.95))}   scan/rematch  x{med_s / med_i:,.2f}")
            visible, woken = asyncio.run(latency(path, listings, args.latency_samples, rng))
            print(f"match latency, ingest of a fitting offer -> match row readable "
                  f"({len(visible)} samples):")
            print(f"  median {statistics.median(visible) * 1000:7.2f} ms   p95 "
                  f"{pct(visible, 0.95) * 1000:7.2f} ms   max {max(visible) * 1000:7.2f} ms")
            print(f"  a listener in Store.wait_events wakes: median "
                  f"{statistics.median(woken) * 1000:7.2f} ms   p95 "
                  f"{pct(woken, 0.95) * 1000:7.2f} ms")


if __name__ == "__main__":
    main()
