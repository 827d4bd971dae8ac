"""Matching benchmark: match latency, the cost of matching a new listing at scale, floods.

    python bench/match.py [--sizes 10000,100000] [--samples 200] [--flood 1000] [--quick]

For each size N (open listings, half offers and half needs, spread over a region about
the size of Germany across the 32 starter categories, 2,000 authors):
  cost     time of node.state.matching.rematch for one new need and one new offer (the listing
           row is inserted first, outside the timing, then rolled back), against a
           brute-force baseline measured in the same run: a Python scan over *all*
           listings, already in memory as dicts, applying the same fit rules
           (fit.fits). rematch must store the brute force's best K (by
           matching.rank) and nothing that does not fit (checked every sample).
           A second baseline, "scan from SQLite", also reads the listings' match columns
           from the database for each new listing (a matcher with no index at all).
  latency  entry arrival -> match visible: a fitting offer from a new author is ingested
           through the async Store (Ledger.ingest in the writer's group commit, durable
           with synchronous=FULL), then read back from `matches` on a reader connection;
           also when a listener blocked in Store.wait_events (what SSE streams and
           webhook workers do) wakes up.
  flood    N needs by one author, then N offers by another, one category, one H3 cell:
           every pair fits (issue 14). Folded as the projection folds a pull (pages of
           500 in one transaction: listing row, `listing` event, rematch), once bounded
           (K = matching.MAX_MATCHES) and once unbounded as before the bound (every pair
           stored, one event per pair), with rows, match events, database size, time,
           and the time per listing of the first and last 100 offers; without --quick
           also bounded at 2N (the cost per listing should not double).
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
from node.state import fit, matching, projection
from node.state.events import emit
from node.state.rows import columns
from node.store.writer import Store
from protocol import Identity, create_entry
from protocol.taxonomy import STARTER_TAXONOMY

REGION = ((47.3, 55.0), (5.9, 15.0))  # lat, lng box
CATEGORIES = list(STARTER_TAXONOMY)
TOP = sorted({c.split("/")[0] for c in CATEGORIES})
NOW = 1_800_000_000_000
MATCH_COLS = ("id", "author", "kind", "category", "available_from", "available_until",
              "lat", "lng", "radius_km", "withdrawn", "urgency")
K = matching.MAX_MATCHES


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
            "local": 0, "ts": NOW, **columns(fields(rng, kind, **kw))}


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
    """Scan every listing in Python with the same fit rules as rematch; best first."""
    found: list[tuple[tuple, tuple[str, str], float | None]] = []
    other = "offer" if new["kind"] == "need" else "need"
    for c in listings:
        if c["kind"] != other or c["withdrawn"]:
            continue
        need, offer = (new, c) if new["kind"] == "need" else (c, new)
        ok, distance = fit.fits(need, offer)
        if ok:
            key = matching.rank(new["id"], other, c["id"], distance, c["urgency"], NOW)
            found.append((key, (need["id"], offer["id"]), distance))
    return {pair: distance for _, pair, distance in sorted(found)}


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
            if not set(list(expect)[:K]) <= got <= set(expect):
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


def unbounded(conn: sqlite3.Connection, listing_id: str, now: int) -> None:
    """Matching before the bound: every fitting pair stored, one `match` event per pair."""
    me = conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()
    for c in matching._candidates(conn, me, now, -1)[0]:
        need, offer = (listing_id, c["id"]) if me["kind"] == "need" else (c["id"], listing_id)
        conn.execute("INSERT INTO matches (need, offer, distance_km, created) VALUES "
                     "(?, ?, ?, ?) ON CONFLICT (need, offer) DO NOTHING",
                     (need, offer, c["d"], now))
        emit(conn, "match", {"need": need, "offer": offer, "distance_km": c["d"]})


def flood(path: Path, n: int, bounded: bool, rng: random.Random) -> dict:
    """n needs, then n offers, all fitting each other, folded in pages of 500."""
    ledger = open_ledger(path, Identity.generate())
    area = h3.latlng_to_cell(52.52, 13.405, 8)
    authors = ["am" + rng.randbytes(32).hex() for _ in range(2)]
    rows = []
    for i in range(2 * n):
        kind = "need" if i < n else "offer"
        content = fields(rng, kind, area=area, category="food/bread")
        content.pop("available_from", None)
        rows.append({"id": rng.randbytes(32).hex(), "author": authors[i >= n], "kind": kind,
                     "seq": i % n + 1, "local": 0, "ts": NOW + i, **columns(content)})
    times: list[float] = []

    def fold(c: sqlite3.Connection, page: list[dict]) -> None:
        c.executemany(projection._INSERT_LISTING, page)
        for row in page:
            t0 = time.perf_counter()
            projection.listing_event(c, row["id"], "created", row)
            if bounded:
                matching.rematch(c, row["id"], NOW, fresh=True, k=K)
            else:
                unbounded(c, row["id"], NOW)
            times.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    try:
        for start in range(0, len(rows), 500):
            ledger.transaction(lambda c, p=rows[start:start + 500]: fold(c, p))
        total = time.perf_counter() - t0
        q = ledger.conn.execute
        out = {"time": total, "rows": q("SELECT count(*) FROM matches").fetchone()[0],
               "events": q("SELECT count(*) FROM events WHERE type = 'match'").fetchone()[0],
               "first": statistics.mean(times[n:n + 100]), "last": statistics.mean(times[-100:])}
        q("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        ledger.close()
    out["size"] = sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))
    return out


def print_flood(n: int, bigger: bool) -> None:
    """The flood of n, bounded and unbounded; bounded again at 2n (``bigger``) to show
    the cost per listing does not follow n."""
    print("\n== flood: N needs then N offers, one category, one H3 cell (all N² pairs fit)")
    runs = [(n, True), (n, False)] + ([(2 * n, True)] if bigger else [])
    results = []
    for size, bounded in runs:
        with tempfile.TemporaryDirectory(prefix="aidmesh-bench-flood-") as tmp:
            r = flood(Path(tmp) / "node.sqlite", size, bounded, random.Random(size))
        results.append(r)
        label = f"N={size:,} " + (f"K={K}" if bounded else "unbounded (before)")
        print(f"  {label:26} {r['time']:7.2f} s {r['rows']:>10,} rows {r['events']:>10,} "
              f"match events {r['size'] / 2**20:7.1f} MiB  per listing "
              f"{r['time'] / (2 * size) * 1000:6.2f} ms (offers: first 100 "
              f"{r['first'] * 1000:.2f}, last 100 {r['last'] * 1000:.2f})")
    new, old = results[:2]
    print(f"  unbounded/bounded at N={n:,}: time x{old['time'] / new['time']:,.1f}, rows "
          f"x{old['rows'] / new['rows']:,.1f}, events x{old['events'] / new['events']:,.1f}, "
          f"size x{old['size'] / new['size']:,.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="comma-separated numbers of open listings")
    parser.add_argument("--samples", type=int, default=100,
                        help="new needs and new offers timed per size (each)")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--flood", type=int, default=1000,
                        help="needs (and as many offers) that all fit each other; 0: skip")
    parser.add_argument("--quick", action="store_true",
                        help="sizes 2000,10000, 30 samples, a flood of 1000: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.samples, args.latency_samples = "2000,10000", 30, 30
        args.flood = 1000
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
    if args.flood:
        print_flood(args.flood, bigger=not args.quick)


if __name__ == "__main__":
    main()
