"""Client API throughput and latency against baselines measured in the same run.

    python bench/api.py [--quick] [--clients 1,8,32] [--posts 2000] [--raw 1000]
                        [--batch 2000] [--repeat 2] [--offers 100000] [--authors 10]
                        [--requests 200] [--skip writes|search] [--seed 7]

(a) durable writes: POST /api/v1/offers over real HTTP on 127.0.0.1 to `aidmesh run` in a
    separate process (fresh temp data dir, free port; the admin token is read from its
    stdout, a coordinator token created through the API), with C concurrent aiohttp clients.
(b) baselines for (a), in this process, no HTTP, same offers:
      raw Ledger.append_local, one durable transaction per offer (the one-at-a-time path),
      raw Ledger.append_local, 100 offers per transaction (what group commit can reach),
      Store.write with C concurrent writers (the asyncio wrapper and its group commit).
    All write paths run once per round (--repeat rounds, back to back); best round kept.
(c) search latency: a data dir filled with --offers offers straight through Ledger in big
    transactions, then `aidmesh run` on it and sequential GET /api/v1/offers for a mix of
    queries (q, category, near + radius_km, all combined, plain page), p50/p99 per query
    type beside the same ListingQuery run directly on SQLite with node.query.run (this
    process, no HTTP). The query types are interleaved so a noisy neighbour hits them alike.

Prints figures and ratios; it never passes or fails. The machine is shared by client and
server (2 CPUs here), so HTTP figures include the client's own CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import queue
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # allow `python bench/api.py` without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import h3

from node.home import initialise
from node.services.ledger import open_ledger
from node.services.listings import payload_from_json
from node.services.tokens import create_token
from node.state.query import ListingQuery
from node.state.query import run as run_query
from node.store.db import connect
from node.store.ledger import now_ms
from node.store.writer import Store
from protocol import Entry, Identity, create_entry
from protocol.taxonomy import STARTER_TAXONOMY

REPO = Path(__file__).resolve().parents[1]

# -- realistic offers ----------------------------------------------------------------------

CITY = (52.5200, 13.4050)  # Berlin; offers spread over ~15 km around the centre
CITY_KM = 15.0
RES = 8
DAY_MS = 86_400_000

# Things people offer, by category (any category not listed borrows the parent's list).
ITEMS: dict[str, list[tuple[str, str]]] = {
    "food": [("mixed groceries", "box"), ("fruit and vegetables", "kg")],
    "food/produce": [("apples from the community garden", "kg"), ("potatoes", "kg"),
                     ("courgettes", "item"), ("fresh herbs", "bunch"), ("tomatoes", "kg")],
    "food/bread": [("sourdough loaves", "loaf"), ("rye bread", "loaf"), ("bread rolls", "bag"),
                   ("day-old pastries", "box")],
    "food/meals": [("portions of lentil soup", "portion"), ("vegetable curry", "portion"),
                   ("hot dinners", "portion"), ("packed lunches", "item")],
    "food/pantry": [("tins of beans", "tin"), ("bags of rice", "kg"), ("pasta", "kg"),
                    ("cooking oil", "bottle")],
    "food/baby": [("baby formula", "tin"), ("jars of baby food", "jar"), ("nappies", "pack")],
    "goods": [("household items", "box"), ("kitchen utensils", "box")],
    "goods/clothing": [("winter coats", "item"), ("children's shoes", "pair"),
                       ("warm blankets", "item"), ("wool socks", "pair")],
    "goods/furniture": [("a sofa", "item"), ("kitchen chairs", "item"), ("a single bed", "item")],
    "goods/hygiene": [("toothbrushes and toothpaste", "pack"), ("sanitary pads", "pack"),
                      ("soap", "bar")],
    "goods/medical": [("first aid kits", "item"), ("face masks", "box"), ("crutches", "pair")],
    "tools": [("a toolbox", "item")],
    "tools/hand": [("a hammer and saw set", "set"), ("screwdrivers", "set")],
    "tools/power": [("a cordless drill", "item"), ("an angle grinder", "item")],
    "tools/garden": [("a lawnmower", "item"), ("spades and rakes", "item")],
    "transport": [("a cargo bike", "item")],
    "transport/ride": [("rides to the hospital", "ride"), ("a lift to the station", "ride")],
    "transport/delivery": [("van deliveries", "trip"), ("moving help with a van", "hour")],
    "housing": [("a spare room", "night")],
    "housing/shelter": [("a sofa bed for a night", "night"), ("an emergency room", "night")],
    "housing/storage": [("garage storage space", "m2"), ("a dry cellar corner", "m2")],
    "skills": [("general help", "hour")],
    "skills/repair": [("bicycle repairs", "hour"), ("sewing and mending", "hour")],
    "skills/plumbing": [("plumbing help", "hour")],
    "skills/electrical": [("electrical checks", "hour")],
    "skills/language": [("Arabic interpreting", "hour"), ("Ukrainian translation", "hour")],
    "skills/tutoring": [("maths tutoring", "hour"), ("German lessons", "hour")],
    "care": [("check-in calls", "hour")],
    "care/childcare": [("babysitting", "hour"), ("school pick-ups", "hour")],
    "care/eldercare": [("shopping for elderly neighbours", "hour"), ("company visits", "hour")],
    "care/pets": [("dog walking", "hour"), ("cat sitting", "day")],
    "money": [("supermarket vouchers", "voucher"), ("a small hardship fund", "eur")],
}
ADJECTIVES = ["fresh", "spare", "free", "extra", "donated", "surplus", "clean", "good"]
SENTENCES = [
    "Collect from the community centre on the corner, ring the side bell.",
    "We can deliver within the neighbourhood on weekends.",
    "Ask for Sam at the food bank desk; bring your own bag if you can.",
    "Everything is checked and clean, first come first served.",
    "Available most evenings after six; message the group first.",
    "Wheelchair accessible entrance at the back of the building.",
    "Suitable for families with small children.",
    "Please pass it on to someone else when you no longer need it.",
    "Left over from the winter drive, plenty to share.",
    "Volunteers will help carry it to your door.",
]
TAGS = ["vegan", "halal", "gluten-free", "kids", "weekend", "pickup", "delivery", "urgent",
        "accessible", "winter", "evening", "elderly"]
ACTIONS_BY_TOP = {"tools": "lend", "skills": "deliverService", "care": "deliverService",
                  "transport": "deliverService", "housing": "use"}


def area_cells(rng: random.Random, count: int) -> list[str]:
    """Res-8 H3 cells scattered (denser at the centre) around the city."""
    cells = []
    for _ in range(count):
        dist = CITY_KM * math.sqrt(rng.random())
        bearing = rng.uniform(0, 2 * math.pi)
        lat = CITY[0] + dist * math.cos(bearing) / 111.0
        lng = CITY[1] + dist * math.sin(bearing) / (111.0 * math.cos(math.radians(CITY[0])))
        cells.append(h3.latlng_to_cell(lat, lng, RES))
    return cells


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


class OfferMaker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.categories = sorted(STARTER_TAXONOMY)
        self.cells = area_cells(self.rng, 400)

    def body(self, i: int, available_until: int) -> dict[str, Any]:
        """One offer as a client sends it to POST /api/v1/offers."""
        rng = self.rng
        category = rng.choice(self.categories)
        item, unit = rng.choice(ITEMS.get(category) or ITEMS[category.split("/")[0]])
        desc = " ".join(rng.sample(SENTENCES, rng.randint(1, 3)))
        body: dict[str, Any] = {
            "title": f"{rng.choice(ADJECTIVES).capitalize()} {item} (#{i})",
            "description": desc,
            "category": category,
            "action": ACTIONS_BY_TOP.get(category.split("/")[0], "transfer"),
            "quantity": {"value": rng.randint(1, 40), "unit": unit},
            "area": rng.choice(self.cells),
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "available_until": rfc3339(available_until),
            "language": "en",
        }
        return body


# -- helpers ------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`aidmesh run` in its own process on 127.0.0.1; stopped with SIGINT (clean close)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = home.parent / f"{home.name}-server.log"

    def start(self, timeout: float = 30.0) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIDMESH_")}
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        # Throughput is measured here, not the rate limits (a few clients, one address).
        env.update(AIDMESH_API_RATE_PER_S="0", AIDMESH_API_RATE_PER_ADDRESS_S="0",
                   AIDMESH_MAX_CONNECTIONS_PER_ADDRESS="512")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "--home", str(self.home), "run",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                cwd=REPO, env=env)
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put("")

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        want_token = False
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.fail("did not print 'serving on' in time")
            if line == "" and self.proc.poll() is not None:
                self.fail(f"exited with {self.proc.returncode}")
            if want_token:
                self.admin_token = line.strip()
                want_token = False
            elif "admin token" in line:
                want_token = True
            elif line.startswith("serving on"):
                break
        while True:  # "serving on" is printed just before the socket is bound
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.fail("is not accepting connections")
                time.sleep(0.05)

    def fail(self, why: str) -> None:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(f"aidmesh run {why}; its log ends:\n{tail}")

    def stop(self) -> None:
        """SIGINT (aiohttp closes the store cleanly), then SIGKILL if it lingers or if we
        are interrupted while waiting: the server never outlives the benchmark."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self.proc = None


@contextmanager
def running(home: Path) -> Iterator[Server]:
    server = Server(home)
    try:
        yield server.start()
    finally:
        server.stop()


async def make_token(session: aiohttp.ClientSession, server: Server, role: str) -> str:
    async with session.post(f"{server.url}/api/v1/tokens",
                            json={"role": role, "name": f"bench-{role}"},
                            headers={"Authorization": f"Bearer {server.admin_token}"}) as r:
        if r.status != 201:
            raise RuntimeError(f"token create: {r.status} {await r.text()}")
        return (await r.json())["token"]


# -- (a) + (b): durable writes ------------------------------------------------------------


@dataclass
class WriteRow:
    path: str
    clients: int | None
    offers: int
    seconds: float
    lat_ms: list[float]

    @property
    def rate(self) -> float:
        return self.offers / self.seconds


def raw_ledger(home: Path, contents: list[dict], per_txn: int) -> WriteRow:
    home.mkdir(parents=True)
    ledger = open_ledger(home / "aidmesh.db", Identity.generate())
    lat: list[float] = []
    try:
        t0 = time.perf_counter()
        for i in range(0, len(contents), per_txn):
            chunk = contents[i:i + per_txn]
            s = time.perf_counter()
            ledger.transaction(lambda c, chunk=chunk: [
                ledger.append_local(c, "offer", content) for content in chunk])
            lat.append((time.perf_counter() - s) * 1000)
        seconds = time.perf_counter() - t0
    finally:
        ledger.close()
    name = f"raw Ledger, {per_txn} offer{'s' if per_txn > 1 else ''}/txn"
    return WriteRow(name, None, len(contents), seconds, lat if per_txn == 1 else [])


async def store_writes(home: Path, contents: list[dict], clients: int) -> WriteRow:
    home.mkdir(parents=True)
    store = Store(open_ledger(home / "aidmesh.db", Identity.generate()))
    await store.start()
    lat: list[float] = []
    todo = iter(contents)

    async def worker() -> None:
        for content in todo:
            s = time.perf_counter()
            await store.write(lambda c, content=content:
                              store.ledger.append_local(c, "offer", content))
            lat.append((time.perf_counter() - s) * 1000)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - t0
    finally:
        await store.close()
    return WriteRow("Store.write (asyncio)", clients, len(contents), seconds, lat)


async def http_posts(server: Server, bodies: list[bytes], clients: int, token: str
                     ) -> WriteRow:
    url = f"{server.url}/api/v1/offers"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lat: list[float] = []
    todo = iter(bodies)
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def post(body: bytes) -> None:
            s = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 201:
                    errors.append(f"{r.status} {(await r.text())[:200]}")
            lat.append((time.perf_counter() - s) * 1000)

        async def worker() -> None:
            for body in todo:
                await post(body)

        for body in bodies[:min(10, len(bodies))]:  # warm up: connections, first writes
            await post(body)
        lat.clear()
        todo = iter(bodies[min(10, len(bodies)):])
        n = len(bodies) - min(10, len(bodies))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} POSTs failed, first: {errors[0]}")
    return WriteRow("HTTP POST /api/v1/offers", clients, n, seconds, lat)


def bench_writes(tmp: Path, args: argparse.Namespace) -> list[WriteRow]:
    """Every path once per round, rounds back to back; the best round of each is kept."""
    maker = OfferMaker(args.seed)
    until = now_ms() + 14 * DAY_MS

    def contents(n: int) -> list[dict]:
        return [payload_from_json("offer", maker.body(i, until)) for i in range(n)]

    best: dict[tuple[str, int | None], WriteRow] = {}

    def keep(row: WriteRow) -> None:
        key = (row.path, row.clients)
        if key not in best or row.rate > best[key].rate:
            best[key] = row

    home = tmp / "http-node"
    with running(home) as server:
        if not server.admin_token:
            raise RuntimeError("aidmesh run did not print an admin token for a new data dir")

        async def token() -> str:
            async with aiohttp.ClientSession() as s:
                return await make_token(s, server, "coordinator")

        coordinator = asyncio.run(token())
        for rnd in range(1, args.repeat + 1):
            line = [f"  round {rnd}/{args.repeat}:"]
            for per_txn, n in ((1, args.raw), (100, args.batch)):
                where = tmp / f"raw{per_txn}-{rnd}"
                row = raw_ledger(where, contents(n), per_txn)
                shutil.rmtree(where, ignore_errors=True)
                keep(row)
                line.append(f"raw {per_txn}/txn {row.rate:,.0f}")
            for c in args.clients:
                where = tmp / f"store{c}-{rnd}"
                row = asyncio.run(store_writes(where, contents(args.posts), c))
                shutil.rmtree(where, ignore_errors=True)
                keep(row)
                line.append(f"store C={c} {row.rate:,.0f}")
            for c in args.clients:
                bodies = [json.dumps(maker.body(i, until)).encode()
                          for i in range(args.posts + 10)]
                row = asyncio.run(http_posts(server, bodies, c, coordinator))
                keep(row)
                line.append(f"HTTP C={c} {row.rate:,.0f}")
            print(" ".join(line[:1]) + " " + ", ".join(line[1:]) + " offers/s", flush=True)
    return list(best.values())


def print_writes(rows: list[WriteRow]) -> None:
    one, batch = rows[0].rate, rows[1].rate
    head = (f"{'path':<28} {'clients':>7} {'offers':>7} {'seconds':>8} {'offers/s':>9} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'x raw 1/txn':>11} {'x raw 100/txn':>13}")
    print(head)
    print("-" * len(head))
    for r in rows:
        clients = "-" if r.clients is None else str(r.clients)
        p50 = f"{pct(r.lat_ms, 50):.2f}" if r.lat_ms else "-"
        p99 = f"{pct(r.lat_ms, 99):.2f}" if r.lat_ms else "-"
        print(f"{r.path:<28} {clients:>7} {r.offers:>7} {r.seconds:>8.2f} {r.rate:>9,.0f} "
              f"{p50:>7} {p99:>7} {r.rate / one:>11.2f} {r.rate / batch:>13.2f}")


# -- (c): search latency ------------------------------------------------------------------


def fill(home: Path, count: int, seed: int, authors: int) -> float:
    """An initialised data dir holding ``count`` offers from ``authors`` other nodes' signed
    logs, ingested as gossip would, over the last 30 days. Returns seconds taken.

    (Not this node's own log: its profile entry is stamped now, and a log's timestamps
    never go back, so backdated local offers are impossible.)"""
    t0 = time.perf_counter()
    done = initialise(home, name="bench node")
    ledger = open_ledger(done.config.db_path, done.identity)
    maker = OfferMaker(seed)
    rng = random.Random(seed + 1)
    others = [Identity.from_secret(rng.randbytes(32)) for _ in range(authors)]
    prev: dict[bytes, Entry | None] = {o.public: None for o in others}
    start = now_ms() - 30 * DAY_MS
    step = 30 * DAY_MS // max(1, count)
    chunk = 5000
    try:
        for lo in range(0, count, chunk):
            def write(conn: sqlite3.Connection, lo: int = lo) -> None:
                pending: dict[bytes, list[Entry]] = {}
                for i in range(lo, min(count, lo + chunk)):
                    ts = start + i * step
                    # about a third have expired by now, like a month of real use
                    body = maker.body(i, ts + rng.randint(DAY_MS // 2, 45 * DAY_MS))
                    ident = others[i % authors]
                    entry = create_entry(ident, "offer", payload_from_json("offer", body),
                                         previous=prev[ident.public], timestamp=ts)
                    prev[ident.public] = entry
                    pending.setdefault(ident.public, []).append(entry)
                for author, entries in pending.items():
                    ledger.ingest(conn, author, entries)

            ledger.transaction(write)
            if sys.stdout.isatty():
                print(f"\r  filling: {min(count, lo + chunk):,}/{count:,} offers "
                      f"({time.perf_counter() - t0:.0f} s)", end="", flush=True)
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        ledger.close()
        if sys.stdout.isatty():
            print()
    return time.perf_counter() - t0


def query_mix(seed: int) -> list[tuple[str, list[dict[str, str]]]]:
    """Query types, each with a few parameter sets to rotate through."""
    rng = random.Random(seed + 2)
    centre = h3.latlng_to_cell(CITY[0], CITY[1], RES)
    nearby = [centre, *rng.sample(sorted(set(h3.grid_disk(centre, 6)) - {centre}), 3)]
    words = ["bread", "winter", "drill", "soup", "tutoring", "blankets"]
    return [
        ("q=<word>", [{"q": w} for w in words]),
        ("category=food", [{"category": "food"}]),
        ("near=<cell>&radius_km=5", [{"near": c, "radius_km": "5"} for c in nearby]),
        ("q+category+near (combined)",
         [{"q": w, "category": c, "near": n, "radius_km": "5"}
          for w, c, n in zip(["bread", "soup", "drill", "blankets"],
                             ["food", "food", "tools", "goods"], nearby, strict=True)]),
        ("plain page (no filter)", [{}]),
    ]


def to_listing_query(params: dict[str, str]) -> ListingQuery:
    """The ListingQuery node.api.parse_query builds for these parameters."""
    query = ListingQuery(kind="offer", limit=50)  # config.page_size default
    if "q" in params:
        query.q = params["q"]
    if "category" in params:
        query.category = params["category"]
    if "near" in params:
        query.near = h3.cell_to_latlng(params["near"])
        query.radius_km = int(params.get("radius_km", 10))
    return query


@dataclass
class QueryRow:
    name: str
    rows: float
    http: list[float]
    direct: list[float]


async def search_http(server: Server, mix, requests: int, db_path: Path, reader: str
                      ) -> list[QueryRow]:
    url = f"{server.url}/api/v1/offers"
    headers = {"Authorization": f"Bearer {reader}"}
    conn = connect(db_path)
    http: dict[str, list[float]] = {name: [] for name, _ in mix}
    direct: dict[str, list[float]] = {name: [] for name, _ in mix}
    counts: dict[str, list[int]] = {name: [] for name, _ in mix}
    mismatches = 0
    try:
        async with aiohttp.ClientSession() as session:
            async def get(params: dict[str, str]) -> tuple[float, bytes]:
                s = time.perf_counter()
                async with session.get(url, params=params, headers=headers) as r:
                    body = await r.read()
                elapsed = (time.perf_counter() - s) * 1000
                if r.status != 200:
                    raise RuntimeError(f"GET {params}: {r.status} {body[:200]!r}")
                return elapsed, body

            for _name, sets in mix:  # warm up: connection, caches, page cache
                for params in sets:
                    await get(params)
                    run_query(conn, to_listing_query(params), now_ms())
            for i in range(requests):
                for name, sets in mix:  # interleaved, so noise hits every type alike
                    params = sets[i % len(sets)]
                    elapsed, body = await get(params)
                    http[name].append(elapsed)
                    n_http = len(json.loads(body)["items"])  # parsed outside the timing
                    query = to_listing_query(params)
                    s = time.perf_counter()
                    rows, _ = run_query(conn, query, now_ms())
                    direct[name].append((time.perf_counter() - s) * 1000)
                    if n_http != len(rows):  # an offer may expire between the two
                        mismatches += 1
                    counts[name].append(n_http)
    finally:
        conn.close()
    if mismatches:
        print(f"  note: {mismatches} HTTP pages differed in length from the direct run",
              flush=True)
    return [QueryRow(name, sum(counts[name]) / len(counts[name]), http[name], direct[name])
            for name, _ in mix]


def match_counts(db_path: Path, mix) -> dict[str, float]:
    """How many offers each query type matches in all (not just the first page)."""
    conn = connect(db_path)
    try:
        out = {}
        for name, sets in mix:
            totals = []
            for params in sets:
                query = to_listing_query(params)
                query.limit = 10**9
                rows, _ = run_query(conn, query, now_ms())
                totals.append(len(rows))
            out[name] = sum(totals) / len(totals)
        return out
    finally:
        conn.close()


def bench_search(tmp: Path, args: argparse.Namespace) -> tuple[list[QueryRow], dict]:
    home = tmp / "search-node"
    fill_s = fill(home, args.offers, args.seed, args.authors)
    db_path = home / "aidmesh.db"
    # token for the reads, straight into the store before the server starts
    ledger = open_ledger(db_path, Identity.generate())  # identity unused: no appends
    try:
        reader = ledger.transaction(lambda c: create_token(c, "reader", "bench", now_ms()))[1]
    finally:
        ledger.close()
    mix = query_mix(args.seed)
    totals = match_counts(db_path, mix)
    info = {"fill_s": fill_s, "db_mb": sum(p.stat().st_size for p in home.glob("aidmesh.db*"))
            / 2**20, "totals": totals}
    print(f"  filled {args.offers:,} offers in {fill_s:.1f} s "
          f"({args.offers / fill_s:,.0f}/s), database {info['db_mb']:.0f} MiB; measuring "
          f"{args.requests} requests per query type", flush=True)
    with running(home) as server:
        rows = asyncio.run(search_http(server, mix, args.requests, db_path, reader))
    return rows, info


def print_search(rows: list[QueryRow], info: dict) -> None:
    head = (f"{'query':<28} {'matches':>8} {'items':>6} {'HTTP p50':>9} {'HTTP p99':>9} "
            f"{'direct p50':>10} {'direct p99':>10} {'x direct p50':>12} {'x direct p99':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        hp50, hp99 = pct(r.http, 50), pct(r.http, 99)
        dp50, dp99 = pct(r.direct, 50), pct(r.direct, 99)
        print(f"{r.name:<28} {info['totals'][r.name]:>8,.0f} {r.rows:>6.0f} {hp50:>9.2f} "
              f"{hp99:>9.2f} {dp50:>10.2f} {dp99:>10.2f} {hp50 / dp50:>12.2f} "
              f"{hp99 / dp99:>12.2f}")


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes (~30 s): 500 POSTs per C, 20000 offers, 60 requests")
    ap.add_argument("--clients", default="1,8,32",
                    help="comma-separated concurrent HTTP clients (default 1,8,32)")
    ap.add_argument("--posts", type=int, help="POSTs per client count (default 2000)")
    ap.add_argument("--raw", type=int, help="offers for the raw 1/txn baseline (default 1000)")
    ap.add_argument("--offers", type=int, help="offers in the search store (default 100000)")
    ap.add_argument("--authors", type=int, default=10,
                    help="other nodes' logs the search store's offers come from (default 10)")
    ap.add_argument("--requests", type=int,
                    help="timed requests per query type (default 200)")
    ap.add_argument("--skip", choices=["writes", "search"], help="leave one part out")
    ap.add_argument("--batch", type=int,
                    help="offers for the raw 100/txn baseline (default 2000)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds of the write paths; the best of each is kept (default 2)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    quick = {"posts": 500, "raw": 300, "batch": 1000, "offers": 20_000, "requests": 60}
    full = {"posts": 2000, "raw": 1000, "batch": 2000, "offers": 100_000, "requests": 200}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.clients, default=0) < 1 or args.posts < 1 or args.raw < 1 \
            or args.offers < 1 or args.requests < 1 or args.authors < 1 or args.batch < 1 \
            or args.repeat < 1:
        ap.error("counts must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="aidmesh-bench-"))
    t0 = time.perf_counter()
    print(f"aidmesh bench/api.py{' --quick' if args.quick else ''}: python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, aiohttp "
          f"{aiohttp.__version__}, {os.cpu_count()} CPUs; temp dir {tmp}")
    print("server: `aidmesh run` in its own process on 127.0.0.1 (default config: WAL, "
          "synchronous=FULL, INFO request log to a file); clients: aiohttp in this process")
    try:
        writes = search = None
        if args.skip != "writes":
            print(f"\n(a)+(b) durable offer writes: {args.posts} offers per client count; raw "
                  f"baselines {args.raw} (1/txn) and {args.batch} (100/txn) offers; best of "
                  f"{args.repeat} rounds", flush=True)
            writes = bench_writes(tmp, args)
        if args.skip != "search":
            print(f"\n(c) search: filling a store with {args.offers:,} offers from "
                  f"{args.authors} logs", flush=True)
            search = bench_search(tmp, args)
        print()
        if writes:
            print("Durable offer writes (each acknowledged write is committed with "
                  "synchronous=FULL)")
            print_writes(writes)
            print("  x raw 1/txn / 100/txn: offers/s over raw Ledger.append_local with one "
                  "durable transaction per offer / per 100 offers, measured above.")
            print(f"  p50/p99: per acknowledged write (raw 1/txn: per transaction). Best of "
                  f"{args.repeat} rounds per row.")
            print()
        if search:
            rows, info = search
            print(f"Search latency in ms at {args.offers:,} offers ({args.requests} sequential "
                  f"requests per type, interleaved; first page of 50)")
            print_search(rows, info)
            print("  matches: offers the query matches in all (open ones); items: on the "
                  "first page. direct: node.query.run on SQLite in this process, no HTTP, "
                  "no JSON.")
        print(f"\nThese are figures, not pass/fail; total {time.perf_counter() - t0:.0f} s.")
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        sys.exit(130)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
