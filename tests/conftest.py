"""Shared fixtures: real data dirs, real SQLite files, real aiohttp servers on 127.0.0.1.

Typical use::

    async def test_something(make_node):
        node = await make_node()                      # fresh data dir + running app
        r = await node.post("/api/v1/offers", json=OFFER)          # admin token
        r = await node.get("/api/v1/offers", role="reader")        # a reader token
        before = node.home.snapshot()                 # everything a write could change
        ...
        assert node.home.snapshot() == before         # "nothing written"
        node = await node.restart()                   # same data dir, new app and server

    def test_cli(node_home):                          # data dir only, no server
        main(["--home", str(node_home.path), "status"])

Several nodes in one test: ``await make_node("a")``, ``await make_node("b")``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from federation_helpers import Cluster
from federation_helpers import wait_until as wait_for  # noqa: F401 - one polling helper for all tests

from node.app import create_app
from node.config import Config, load_config
from node.home import initialise
from node.services import tokens as auth
from node.services.ledger import open_ledger
from node.store.ledger import Ledger, now_ms
from protocol import Entry, Identity, create_entry

pytest_plugins = ["browser_plugin"]  # chromium, browser, nodes: see tests/browser.py
ROLES = auth.ROLES
CLOSE_TIMEOUT = 15.0

OFFER = {"title": "Fresh bread", "category": "food/bread", "action": "transfer",
         "quantity": {"value": 20, "unit": "loaves"}}
NEED = {"title": "Baby formula", "category": "food/baby", "action": "transfer",
        "urgency": "high"}


@dataclass
class NodeHome:
    """An initialised data dir: key, config, database and a first admin token."""

    path: Path
    config: Config
    identity: Identity
    admin_token: str
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def ledger(self) -> Ledger:
        """A synchronous store on this data dir (close it when done)."""
        return open_ledger(self.config.db_path, self.identity)

    def make_token(self, role: str, name: str | None = None) -> str:
        """A new token of ``role``, written straight to the database."""
        ledger = self.ledger()
        try:
            _, token = ledger.transaction(
                lambda c: auth.create_token(c, role, name or f"test {role}", now_ms()))
        finally:
            ledger.close()
        return token

    def token(self, role: str) -> str:
        """One token per role, made when the home was (admin: the one from initialise)."""
        if role == "admin":
            return self.admin_token
        if role not in self._tokens:
            self._tokens[role] = self.make_token(role)
        return self._tokens[role]

    def db(self) -> sqlite3.Connection:
        """A read-only connection for assertions (close it when done)."""
        conn = sqlite3.connect(f"file:{self.config.db_path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        conn = self.db()
        try:
            return [tuple(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def entry_count(self) -> int:
        return self.query("SELECT count(*) FROM entries")[0][0]

    def heads(self) -> list[tuple]:
        return self.query("SELECT author, seq, id FROM heads ORDER BY author")

    def listings(self) -> list[tuple]:
        """The whole listings table except rowid, ordered by id."""
        conn = self.db()
        try:
            cols = [r["name"] for r in conn.execute("PRAGMA table_info(listings)")
                    if r["name"] != "rowid"]
            return [tuple(r) for r in conn.execute(
                f"SELECT {', '.join(cols)} FROM listings ORDER BY id")]
        finally:
            conn.close()

    def ingest(self, entries: list[Entry]) -> None:
        """Store entries of another node's log (as if replicated from a peer)."""
        ledger = self.ledger()
        try:
            ledger.transaction(lambda c: ledger.ingest(c, entries[0].author, entries))
        finally:
            ledger.close()

    def snapshot(self) -> dict[str, Any]:
        """Everything a client request could write: compare before/after a rejection."""
        return {
            "entries": self.entry_count(),
            "heads": self.heads(),
            "listings": self.listings(),
            "tokens": self.query("SELECT id, role, revoked FROM tokens ORDER BY id"),
        }


def init_home(path: Path, **settings: Any) -> NodeHome:
    """Initialise a data dir at ``path``; ``settings`` are written into aidmesh.toml."""
    done = initialise(path)
    assert done.admin_token is not None
    config = done.config
    if settings:
        for key, value in settings.items():
            if not hasattr(config, key) or key == "home":
                raise AttributeError(f"unknown config setting {key!r}")
            setattr(config, key, value)
        config.config_path.write_text(config.to_toml())
        config = load_config(path)
    home = NodeHome(Path(path), config, done.identity, done.admin_token)
    for role in ROLES:  # made up front so a snapshot taken later never sees them appear
        home.token(role)
    return home


def make_log(identity: Identity, items: list[tuple[str, Any]],
             previous: Entry | None = None, timestamp: int | None = None) -> list[Entry]:
    """Sign a run of entries of ``identity``'s log: ``[("offer", {...}), ...]``."""
    entries = []
    for kind, content in items:
        previous = create_entry(identity, kind, content, previous=previous, timestamp=timestamp)
        entries.append(previous)
    return entries


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """AIDMESH_* variables of the developer's shell must not leak into tests."""
    for key in list(os.environ):
        if key.startswith("AIDMESH_"):
            monkeypatch.delenv(key)


@pytest.fixture
def make_home(tmp_path: Path) -> Callable[..., NodeHome]:
    """Factory: ``make_home("name", open_read=True)`` -> an initialised data dir."""
    used: set[str] = set()

    def make(name: str = "node", **settings: Any) -> NodeHome:
        if name in used:
            raise ValueError(f"data dir {name!r} already made in this test")
        used.add(name)
        return init_home(tmp_path / name, **settings)

    return make


@pytest.fixture
def node_home(make_home: Callable[..., NodeHome]) -> NodeHome:
    return make_home()


class NodeClient:
    """A running node: its data dir plus an aiohttp test client on a real loopback port."""

    def __init__(self, home: NodeHome, client: TestClient,
                 factory: Callable[[NodeHome], Awaitable[NodeClient]]) -> None:
        self.home = home
        self.client = client
        self._factory = factory

    @property
    def app(self):
        return self.client.app

    @property
    def url(self) -> str:
        return str(self.client.make_url(""))

    @property
    def node_id(self) -> str:
        return self.home.node_id

    def auth(self, role: str | None = "admin", token: str | None = None) -> dict[str, str]:
        """Authorization header for ``role`` (or an explicit token); {} for None."""
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if role is None:
            return {}
        return {"Authorization": f"Bearer {self.home.token(role)}"}

    async def request(self, method: str, path: str, *, role: str | None = "admin",
                      token: str | None = None, headers: dict[str, str] | None = None,
                      **kwargs: Any) -> ClientResponse:
        hdrs = {**self.auth(role, token), **(headers or {})}
        return await self.client.request(method, path, headers=hdrs, **kwargs)

    async def get(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> ClientResponse:
        return await self.request("DELETE", path, **kw)

    async def json(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        """Make a request, assert its status, return the decoded body."""
        r = await self.request(method, path, **kw)
        text = await r.text()
        assert r.status == expect, f"{method} {path}: {r.status} {text}"
        return await r.json(content_type=None) if text else None

    async def create(self, kind: str = "offer", body: dict | None = None, **fields: Any
                     ) -> dict[str, Any]:
        """POST an offer or need (OFFER/NEED defaults, overridden by ``fields``)."""
        base = dict(body if body is not None else (OFFER if kind == "offer" else NEED))
        base.update(fields)
        return await self.json("POST", f"/api/v1/{kind}s", 201, json=base, role="coordinator")

    async def close(self) -> None:
        await self.client.close()

    async def restart(self) -> NodeClient:
        """Close this app (running its cleanup) and serve a new one on the same data dir."""
        await self.close()
        return await self._factory(self.home)


@pytest.fixture
async def make_node(aiohttp_client, make_home):
    """Factory: ``await make_node()`` or ``await make_node("b", open_read=True)`` or
    ``await make_node(home=existing_home)`` -> a running NodeClient."""

    clients: list[TestClient] = []

    async def serve(home: NodeHome) -> NodeClient:
        config = load_config(home.path)
        client = await aiohttp_client(create_app(config, home.identity))
        clients.append(client)
        return NodeClient(home, client, serve)

    async def make(name: str = "node", *, home: NodeHome | None = None,
                   **settings: Any) -> NodeClient:
        return await serve(home if home is not None else make_home(name, **settings))

    yield make
    # Close every node here with a deadline: a shutdown that hangs fails the test with the
    # stacks of the tasks still running instead of hanging the whole run.
    for client in clients:
        closing = asyncio.ensure_future(client.close())
        done, _ = await asyncio.wait([closing], timeout=CLOSE_TIMEOUT)
        if not done:
            stacks = []
            for task in asyncio.all_tasks():
                frames = task.get_stack()
                where = f"{frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" \
                    if frames else "?"
                stacks.append(f"{task.get_name()} at {where}")
            pytest.fail(f"node did not shut down within {CLOSE_TIMEOUT}s; tasks:\n"
                        + "\n".join(stacks))
        closing.result()


@pytest.fixture
async def node(make_node) -> NodeClient:
    return await make_node()


async def next_ms(after: int) -> None:
    """Wait until the wall clock (ms) has passed ``after``: entries then get a later time."""
    await wait_for(lambda: now_ms() > after, timeout=2.0, interval=0.001, what="clock tick")


def assert_problem(status: int, body: Any, expect: int, code: str | None = None,
                   field: str | None = None) -> None:
    """An RFC 9457 problem body with the expected status (and code / field)."""
    assert status == expect, body
    assert isinstance(body, dict), body
    assert body["status"] == expect
    assert body["type"].startswith("urn:aidmesh:problem:")
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"]
    if code is not None:
        assert body["type"] == f"urn:aidmesh:problem:{code}", body
    if field is not None:
        assert body.get("field") == field, body


async def expect_problem(response: ClientResponse, status: int, code: str | None = None,
                         field: str | None = None) -> dict[str, Any]:
    """Read a response that must be a problem+json with ``status``; returns the body."""
    text = await response.text()
    assert response.status == status, f"{response.status} {text}"
    assert response.content_type == "application/problem+json", response.content_type
    body = await response.json(content_type=None)
    assert_problem(response.status, body, status, code, field)
    assert response.headers["X-Request-Id"] == body["request_id"]
    return body


@pytest.fixture
async def cluster(tmp_path: Path):
    """Nodes started in this test; all of them are shut down at the end."""
    async with Cluster(tmp_path) as c:
        yield c
