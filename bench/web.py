"""Web app page times and weights at 10k listings, beside the JSON API on the same data.

    python -m bench.web [--quick] [--listings 10000] [--own 200] [--requests 60]

A data dir gets --listings offers and needs: --own of them this node's (half needs, half
offers), the rest from 20 other groups' signed logs, ingested as gossip would (so matches
are computed as in real use). A coordinator and a session are made through the people
service; then `aidmesh run` serves it in another process and each page is fetched
--requests times over HTTP on 127.0.0.1, interleaved, with the session cookie. Baseline
from the same run: GET /api/v1/offers?limit=30 with a reader token (the API's JSON for a
page of listings). Weight: a page's HTML plus the CSS and JS it loads, uncompressed.
Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench._common import free_port, offer_content, start_node_process
from node.home import initialise
from node.services import people
from node.services.ledger import open_ledger
from node.services.listings import payload_from_json
from node.services.tokens import create_token
from node.store.ledger import now_ms
from protocol import Entry, Identity, create_entry

AUTHORS = 20


def fill(home: Path, count: int, own: int, seed: int) -> tuple[str, str, list[str]]:
    """Returns (session cookie, reader token, ids of some own listings)."""
    rng = random.Random(seed)
    done = initialise(home, name="bench group")
    ledger = open_ledger(done.config.db_path, done.identity)
    others = [Identity.from_secret(rng.randbytes(32)) for _ in range(AUTHORS)]
    prev: dict[bytes, Entry | None] = {o.public: None for o in others}
    try:
        def remote(conn) -> None:
            pending: dict[bytes, list[Entry]] = {}
            for i in range(count - own):
                kind = "offer" if i % 2 else "need"
                body = offer_content(rng)
                body["available_until"] = now_ms() + 86_400_000 * rng.randint(1, 30)
                ident = others[i % AUTHORS]
                content = payload_from_json(kind, _json(body))
                entry = create_entry(ident, kind, content, previous=prev[ident.public])
                prev[ident.public] = entry
                pending.setdefault(ident.public, []).append(entry)
            for author, entries in pending.items():
                ledger.ingest(conn, author, entries)

        ledger.transaction(remote)

        def local(conn) -> list[str]:
            ids = []
            for i in range(own):
                kind = "need" if i % 2 else "offer"
                body = offer_content(rng)
                body["available_until"] = now_ms() + 86_400_000 * 7
                ids.append(ledger.append_local(
                    conn, kind, payload_from_json(kind, _json(body))).id.hex())
            token = people.setup_token(conn, now_ms())
            person = people.accept_invite(conn, token, "Bench", "bench passphrase", now_ms())
            cookie, _session = people.open_session(conn, person.id, "bench", now_ms())
            reader = create_token(conn, "reader", "bench", now_ms())[1]
            return [cookie, reader, *ids]

        cookie, reader, *ids = ledger.transaction(local)
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        ledger.close()
    return cookie, reader, ids


def _json(body: dict) -> dict:
    out = dict(body)
    out["available_until"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                           time.gmtime(body["available_until"] / 1000))
    return out


async def measure(base: str, cookie: str, reader: str, ids: list[str], n: int
                  ) -> dict[str, tuple[list[float], int]]:
    pages = {
        "Today /": "/", "Browse": "/browse", "Browse q=bread": "/browse?q=bread",
        "Browse needs, category": "/browse?kind=need&category=Cooked+meals",
        "Post form": "/post/offer", "Item (own offer)": f"/offers/{ids[0]}",
        "Item (own need)": f"/needs/{ids[1]}", "Claims": "/claims",
        "Sign in (no session)": "/signin",
        "baseline: API /api/v1/offers?limit=30": "/api/v1/offers?limit=30",
    }
    times: dict[str, list[float]] = {k: [] for k in pages}
    sizes: dict[str, int] = {}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        assets = 0
        for asset in ("/static/app.css", "/static/app.js"):
            async with s.get(base + asset) as r:
                assets += len(await r.read())
        for round_ in range(n + 3):
            for name, path in pages.items():
                headers = {"Authorization": f"Bearer {reader}"} if path.startswith("/api") \
                    else {"Cookie": f"aidmesh_session={cookie}"} if "signin" not in path \
                    else {}
                t0 = time.perf_counter()
                async with s.get(base + path, headers=headers, allow_redirects=False) as r:
                    body = await r.read()
                    assert r.status == 200, (path, r.status, body[:300])
                elapsed = time.perf_counter() - t0
                if round_ >= 3:  # warm-up rounds are not counted
                    times[name].append(elapsed * 1000)
                sizes[name] = len(body) + (0 if path.startswith("/api") else assets)
    return {k: (times[k], sizes[k]) for k in pages}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 listings, 20 requests")
    ap.add_argument("--listings", type=int, default=10_000)
    ap.add_argument("--own", type=int, default=200)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.quick:
        args.listings, args.requests = 2_000, 20
    root = Path(tempfile.mkdtemp(prefix="aidmesh-bench-web-"))
    proc = None
    try:
        t0 = time.perf_counter()
        cookie, reader, ids = fill(root / "node", args.listings, args.own, args.seed)
        print(f"web pages at {args.listings:,} listings ({args.own} own, "
              f"{AUTHORS} other groups): filled in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        proc = start_node_process(root / "node", port)
        results = asyncio.run(measure(f"http://127.0.0.1:{port}", cookie, reader, ids,
                                      args.requests))
        base = statistics.median(results["baseline: API /api/v1/offers?limit=30"][0])
        print(f"{'page':<40} {'p50 ms':>8} {'p95 ms':>8} {'x API p50':>10} {'KB':>7}")
        for name, (times, size) in results.items():
            print(f"{name:<40} {statistics.median(times):8.1f} {pct(times, 95):8.1f} "
                  f"{statistics.median(times) / base:10.2f} {size / 1024:7.1f}")
        print("KB: HTML + app.css + app.js as served, uncompressed (API: the JSON only).")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
