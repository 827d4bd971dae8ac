"""Several real nodes in one test: real data dirs, SQLite files and loopback servers.

Typical use::

    async def test_line(cluster):
        a, b, c = await cluster.start(3)
        await cluster.line(a, b, c)                  # mutual peering via the admin API
        offer = await a.create()
        await wait_until(lambda: c.has_offer(offer["id"]), what="offer at C")
        await b.stop(); await b.start()              # same data dir, new port
        await cluster.repeer(b)                      # its peers learn the new URL

Nothing here sleeps to synchronise: `wait_until` polls a condition with a deadline.
`MaliciousPeer` is a tiny hand-written peer that serves whatever it is told on the
federation endpoints (a state, raw or streamed; pull pages, fixed or computed from the
want; payloads); `signed` sends hand-signed federation requests.
"""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from node.app import create_app
from node.config import Config
from node.federation.httpsig import sign_request
from node.home import initialise
from node.runtime import NODE, Node
from node.services import tokens as auth
from node.services.ledger import open_ledger
from node.store.ledger import now_ms
from protocol import Entry, Identity, create_entry
from protocol.sync import (
    Head,
    decode_payload_request,
    decode_want,
    encode_frame,
    encode_state,
    state_digest,
)

GOSSIP_INTERVAL_S = 0.5
OFFER = {"title": "20 loaves of bread", "category": "food/bread", "action": "transfer",
         "quantity": {"value": 20, "unit": "loaves"}}


async def wait_until(predicate: Callable[[], Any], timeout: float = 15.0,
                     interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``predicate`` (sync or async) until truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class FedNode:
    """One real node: data dir, identity, admin token and (while running) its server."""

    name: str
    config: Config
    identity: Identity
    admin_token: str
    session: aiohttp.ClientSession
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    url: str = ""

    @property
    def id(self) -> str:
        return self.identity.node_id

    @property
    def public(self) -> bytes:
        return self.identity.public

    @property
    def home(self) -> Path:
        return self.config.home

    @property
    def node(self) -> Node:
        assert self.app is not None, f"{self.name} is not running"
        return self.app[NODE]

    @property
    def running(self) -> bool:
        return self.runner is not None

    async def start(self) -> FedNode:
        """Serve the data dir on a fresh 127.0.0.1 port (a restart gets a new port)."""
        assert self.runner is None, f"{self.name} is already running"
        self.app = create_app(self.config, self.identity)
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - port 0 lookup
        self.runner, self.url = runner, f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        """Stop serving; the app's cleanup stops gossip and closes the store."""
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
            self.app = None

    # -- client API --------------------------------------------------------------------

    async def call(self, method: str, path: str, body: Any = None,
                   expect: int | None = 200) -> Any:
        """Admin-token request to the client API; asserts the status unless expect=None."""
        async with self.session.request(
                method, self.url + path, json=body,
                headers={"Authorization": "Bearer " + self.admin_token}) as r:
            text = await r.text()
            if expect is not None:
                assert r.status == expect, f"{self.name} {method} {path}: {r.status} {text}"
                return await r.json(content_type=None) if text else None
            return r.status, (await r.json(content_type=None) if text else None)

    async def create(self, kind: str = "offer", **fields: Any) -> dict[str, Any]:
        return await self.call("POST", f"/api/v1/{kind}s", {**OFFER, **fields}, 201)

    async def listing(self, entry_id: str, kind: str = "offer") -> dict[str, Any] | None:
        status, body = await self.call("GET", f"/api/v1/{kind}s/{entry_id}", expect=None)
        return body if status == 200 else None

    async def has_offer(self, entry_id: str) -> bool:
        return await self.listing(entry_id) is not None

    async def logs(self) -> dict[str, tuple[int, str]]:
        """author id -> (seq, head id), through the client API."""
        body = await self.call("GET", "/api/v1/logs")
        return {item["author"]: (item["seq"], item["head"]) for item in body["logs"]}

    async def peers(self) -> dict[str, dict[str, Any]]:
        body = await self.call("GET", "/api/v1/peers")
        return {p["id"]: p for p in body["peers"]}

    async def add_peer(self, other: FedNode | str, url: str | None = None) -> dict[str, Any]:
        pid = other if isinstance(other, str) else other.id
        purl = url if url is not None else other.url  # type: ignore[union-attr]
        return await self.call("POST", "/api/v1/peers", {"id": pid, "url": purl}, 201)

    async def remove_peer(self, other: FedNode | str) -> None:
        pid = other if isinstance(other, str) else other.id
        await self.call("DELETE", f"/api/v1/peers/{pid}", expect=204)

    # -- direct reads of the SQLite file (read-only) -----------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.config.db_path}?mode=ro", uri=True)
        try:
            return [tuple(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def snapshot(self, *, excluding: tuple[bytes, ...] = ()) -> dict[str, Any]:
        """Entries and heads of every log except ``excluding`` (the sentinel's author)."""
        marks = ",".join("?" * len(excluding)) or "NULL"
        return {
            "entries": self.query(f"SELECT author, seq, id FROM entries WHERE author NOT IN "
                                  f"({marks}) ORDER BY author, seq", excluding),
            "heads": self.query(f"SELECT author, seq, id FROM heads WHERE author NOT IN "
                                f"({marks}) ORDER BY author", excluding),
            "forks": self.query("SELECT author, seq FROM forks ORDER BY author"),
        }

    def head_seq(self, author: bytes) -> int:
        rows = self.query("SELECT seq FROM heads WHERE author = ?", (author,))
        return rows[0][0] if rows else 0


class Cluster:
    """Starts nodes in tmp_path and shuts every one of them down at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[FedNode] = []
        self.session: aiohttp.ClientSession | None = None
        self.extra: list[web.AppRunner] = []

    async def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        return self.session

    async def add(self, name: str, *, hops: int = 2, key_from: FedNode | None = None,
                  start: bool = True, interval: float = GOSSIP_INTERVAL_S) -> FedNode:
        """A new data dir; ``key_from`` copies another node's key file (makes forks)."""
        home = self.root / name
        if key_from is not None:
            home.mkdir(parents=True)
            target = home / "node.key"
            target.write_bytes(key_from.config.key_path.read_bytes())
            target.chmod(0o600)
        done = initialise(home, name=name)
        token = done.admin_token
        if token is None:  # an existing key: no first token was made, make one
            ledger = open_ledger(done.config.db_path, done.identity)
            try:
                token = ledger.transaction(
                    lambda c: auth.create_token(c, "admin", "test admin", now_ms())[1])
            finally:
                ledger.close()
        config = done.config
        config.gossip_interval_s = interval
        config.hops = hops
        node = FedNode(name, config, done.identity, token, await self._session())
        self.nodes.append(node)
        if start:
            await node.start()
        return node

    async def start(self, count: int, *, hops: int = 2, prefix: str = "n",
                    interval: float = GOSSIP_INTERVAL_S) -> list[FedNode]:
        return [await self.add(f"{prefix}{len(self.nodes)}", hops=hops, interval=interval)
                for _ in range(count)]

    async def peer(self, a: FedNode, b: FedNode) -> None:
        """Mutual peering, each side through its own admin API."""
        await a.add_peer(b)
        await b.add_peer(a)

    async def unpeer(self, a: FedNode, b: FedNode) -> None:
        await a.remove_peer(b)
        await b.remove_peer(a)

    async def line(self, *nodes: FedNode) -> None:
        for a, b in zip(nodes, nodes[1:], strict=False):
            await self.peer(a, b)

    async def repeer(self, moved: FedNode) -> None:
        """After a restart on a new port: every running node that trusts ``moved`` is told
        its new URL (POST /api/v1/peers again, which appends a new trust entry)."""
        for other in self.nodes:
            if other is moved or not other.running:
                continue
            if moved.id in await other.peers():
                await other.add_peer(moved)

    async def serve(self, app: web.Application) -> str:
        """Serve an extra (e.g. malicious) app on loopback; returns its base URL."""
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.extra.append(runner)
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # noqa: SLF001

    async def close(self) -> None:
        for node in self.nodes:
            await node.stop()
        for runner in self.extra:
            await runner.cleanup()
        if self.session is not None:
            await self.session.close()


    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def converged(nodes: list[FedNode]) -> bool:
    """Every node holds the same heads vector."""
    views = [await n.logs() for n in nodes]
    return all(v == views[0] for v in views[1:])


# -- hostile helpers -----------------------------------------------------------------------


async def signed(session: aiohttp.ClientSession, identity: Identity, method: str, url: str,
                 body: bytes | None = None, *, headers: dict[str, str] | None = None,
                 created: datetime.datetime | None = None,
                 presigned: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    """Send one federation request signed by ``identity``; returns (status, body, headers
    sent). ``presigned`` resends exactly those headers (a replay)."""
    hdrs = presigned if presigned is not None else sign_request(
        identity, method, url, body, headers, created=created)
    async with session.request(method, url, data=body, headers=hdrs) as r:
        raw = await r.read()
        data: Any = raw
        if r.content_type in ("application/json", "application/problem+json"):
            data = await r.json(content_type=None)
        return r.status, data, hdrs


def make_run(identity: Identity, count: int, *, previous: Entry | None = None,
             kind: str = "profile", start: int = 0) -> list[Entry]:
    out = []
    for i in range(count):
        content = {"name": f"mallory {start + i}"} if kind == "profile" else \
            {"title": f"bad offer {start + i}", "category": "food/bread",
             "action": "transfer"}
        previous = create_entry(identity, kind, content, previous=previous)
        out.append(previous)
    return out


@dataclass
class MaliciousPeer:
    """A peer the victim trusts (its key is a real Identity) that serves what it is told.

    /state: ``state_body`` (raw bytes) or ``state_stream`` (an async generator of chunks,
    e.g. endless) if set, else the canonical state of ``heads`` and ``forks``.
    /pull: ``pull_answer(want)`` if set, else ``page`` (raw bytes of the whole response).
    /payloads: ``payloads_answer(ids)`` if set, else the frames of the asked entries found
    in ``holds`` (id -> Entry) that carry a payload. Requests are counted per endpoint;
    the decoded wants and payload requests are kept; ``state_sent`` counts the bytes the
    streamed state got out before the victim hung up.
    """

    identity: Identity = field(default_factory=Identity.generate)
    heads: dict[bytes, Head] = field(default_factory=dict)
    forks: list[bytes] = field(default_factory=list)
    page: bytes = b""
    hits: dict[str, int] = field(default_factory=lambda: {
        "state": 0, "pull": 0, "notify": 0, "payloads": 0})
    url: str = ""
    state_body: bytes | None = None
    state_stream: Callable[[], AsyncIterator[bytes]] | None = None
    state_sent: int = 0
    pull_answer: Callable[[dict[bytes, int]], bytes] | None = None
    payloads_answer: Callable[[list[bytes]], bytes] | None = None
    holds: dict[bytes, Entry] = field(default_factory=dict)
    wants: list[dict[bytes, int]] = field(default_factory=list)
    asked: list[list[bytes]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.identity.node_id

    def serve_entries(self, entries: list[Entry], *, page: bytes | None = None,
                      heads: dict[bytes, Head] | None = None) -> None:
        """Advertise the last entry of each author as its head; serve ``page`` (default:
        the canonical frames of ``entries``)."""
        if heads is None:
            heads = {}
            for e in entries:
                heads[e.author] = Head(e.seq, e.id)
        self.heads = heads
        self.page = page if page is not None else b"".join(
            encode_frame(e.raw, e.payload) for e in entries)

    def serve_logs(self, entries: list[Entry], *, strip: set[bytes] = frozenset(),
                   extra: bytes = b"") -> None:
        """Serve these logs honestly from the asked position (heads: each author's last
        entry), but with a nil payload for the ids in ``strip``, and ``extra`` frames
        appended to every pull answer."""
        self.heads = {}
        for e in entries:
            self.heads[e.author] = Head(e.seq, e.id)
        by_author: dict[bytes, list[Entry]] = {}
        for e in entries:
            by_author.setdefault(e.author, []).append(e)

        def answer(want: dict[bytes, int]) -> bytes:
            out = [encode_frame(e.raw, None if e.id in strip else e.payload)
                   for a in sorted(want) for e in by_author.get(a, []) if e.seq > want[a]]
            return b"".join(out) + extra

        self.pull_answer = answer

    def app(self) -> web.Application:
        async def state(request: web.Request) -> web.StreamResponse:
            self.hits["state"] += 1
            if self.state_stream is not None:
                resp = web.StreamResponse(headers={
                    "Content-Type": "application/x-aidmesh-state"})
                await resp.prepare(request)
                try:
                    async for chunk in self.state_stream():
                        await resp.write(chunk)
                        self.state_sent += len(chunk)
                except (ConnectionResetError, RuntimeError):
                    pass  # the victim hung up: what it refuses to read
                return resp
            body = self.state_body if self.state_body is not None else \
                encode_state(self.heads, self.forks)
            return web.Response(body=body, content_type="application/x-aidmesh-state",
                                headers={"ETag": '"' + state_digest(body).hex() + '"'})

        async def pull(request: web.Request) -> web.Response:
            want = decode_want(await request.read())
            self.wants.append(want)
            self.hits["pull"] += 1
            body = self.pull_answer(want) if self.pull_answer is not None else self.page
            return web.Response(body=body, content_type="application/x-aidmesh-frames")

        async def notify(request: web.Request) -> web.Response:
            self.hits["notify"] += 1
            return web.Response(status=202)

        async def payloads(request: web.Request) -> web.Response:
            ids = decode_payload_request(await request.read())
            self.asked.append(ids)
            self.hits["payloads"] += 1
            if self.payloads_answer is not None:
                body = self.payloads_answer(ids)
            else:
                body = b"".join(encode_frame(self.holds[i].raw, self.holds[i].payload)
                                for i in ids if i in self.holds and self.holds[i].payload)
            return web.Response(body=body, content_type="application/x-aidmesh-frames")

        app = web.Application()
        app.add_routes([web.get("/federation/v1/state", state),
                        web.post("/federation/v1/pull", pull),
                        web.post("/federation/v1/notify", notify),
                        web.post("/federation/v1/payloads", payloads)])
        return app

    async def start(self, cluster: Cluster) -> MaliciousPeer:
        self.url = await cluster.serve(self.app())
        return self
