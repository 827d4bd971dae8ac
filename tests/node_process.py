"""Real `aidmesh run` processes on 127.0.0.1, as a person would start them.

The browser tests need what only the real command gives: the lines it prints on a new
node (the admin token, the setup link), a process of its own (so a page load is a real
round trip through the edge), and a clean SIGTERM. Everything runs on asyncio subprocesses
so the test's event loop (which also drives Chromium) is never blocked.

    node = await NodeProcess.start(tmp_path / "a", name="Northside", gossip_interval_s=1)
    node.url, node.node_id, node.admin_token, node.setup_link
    status, body = await node.api("GET", "/api/v1/offers", role="reader")
    await node.peer_with(other)          # both trust each other, each holds the other's log
    await node.stop()
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
import socket
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from federation_helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
READY = "serving on"  # the line `aidmesh run` prints once it accepts connections
JOIN_LINK = re.compile(r"https?://\S+/join/\S+")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aidmesh_command() -> list[str]:
    """The installed `aidmesh` script beside this Python (.venv/bin/aidmesh), else -m."""
    script = Path(sys.executable).with_name("aidmesh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "node.cli"]


def _toml(settings: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "".join(f"{k} = {value(v)}\n" for k, v in settings.items())


def _clean_env() -> dict[str, str]:
    """No AIDMESH_* from the caller's shell: the node's settings are the test's alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDMESH_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class NodeProcess:
    """One `aidmesh run --home DIR --port P --host 127.0.0.1` and what it printed."""

    home: Path
    port: int = 0
    node_id: str = ""
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    http: aiohttp.ClientSession | None = None
    _readers: list[asyncio.Task[None]] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str | None:
        """The token a new node prints once, on the line after "admin token"."""
        for i, line in enumerate(self.stdout[:-1]):
            if "admin token" in line:
                return self.stdout[i + 1].strip()
        return None

    @property
    def setup_link(self) -> str | None:
        """The one-time setup link (a URL with /join/) a new node prints, if it printed one."""
        for line in self.stdout:
            if m := JOIN_LINK.search(line):
                return m.group(0)
        return None

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr])

    @classmethod
    async def start(cls, home: Path, **settings: Any) -> NodeProcess:
        """Start a node in ``home`` (new or not) on a free port, once /healthz answers.
        aidmesh.toml gets ``settings`` (any Config field) over what it held, and
        public_url = this port's URL, so trust entries name the right address."""
        node = cls(home=Path(home))
        node.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            for _attempt in range(3):  # a port picked free can be taken before we bind it
                node.port = free_port()
                node._configure(settings)
                if await node._launch():
                    return node
            raise AssertionError(f"aidmesh run found no free port\n{node.output()}")
        except BaseException:
            await node.stop()
            raise

    def _configure(self, settings: dict[str, Any]) -> None:
        path = self.home / "aidmesh.toml"
        held = tomllib.loads(path.read_text()) if path.exists() else {}
        self.home.mkdir(parents=True, exist_ok=True)
        path.write_text(_toml({**held, "public_url": self.url, **settings}))
        path.chmod(0o600)

    async def _launch(self) -> bool:
        """True once serving; False if the port was taken; raises on any other failure."""
        self.proc = await asyncio.create_subprocess_exec(
            *aidmesh_command(), "run", "--home", str(self.home), "--port", str(self.port),
            "--host", "127.0.0.1", cwd=ROOT, env=_clean_env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self._readers = [asyncio.create_task(_collect(self.proc.stdout, self.stdout)),
                         asyncio.create_task(_collect(self.proc.stderr, self.stderr))]

        async def serving() -> bool:
            if self.proc.returncode is not None:
                return True
            try:
                async with self.http.get(f"{self.url}/healthz") as r:
                    if r.status == 200:
                        self.node_id = (await r.json())["node"]
                        return True
            except aiohttp.ClientConnectionError:
                pass
            return False

        await wait_until(serving, timeout=START_TIMEOUT_S, interval=0.05,
                         what=f"aidmesh run in {self.home} to serve /healthz")
        if self.proc.returncode is not None:
            await asyncio.gather(*self._readers)
            text = self.output()
            if "Address already in use" in text or f"[Errno {errno.EADDRINUSE}]" in text:
                return False
            raise AssertionError(f"aidmesh run exited with {self.proc.returncode}\n{text}")
        await wait_until(lambda: any(READY in line for line in self.stdout), timeout=10,
                         what=f"aidmesh run to print {READY!r}")
        return True

    async def stop(self) -> None:
        """SIGTERM (the node shuts down cleanly), then SIGKILL if it has not within 15 s."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def cli(self, *args: str) -> str:
        """Run `aidmesh --home DIR ARGS...` (as an operator would, beside the running
        node); returns its stdout, fails the test with its stderr on a non-zero exit."""
        proc = await asyncio.create_subprocess_exec(
            *aidmesh_command(), "--home", str(self.home), *args, cwd=ROOT, env=_clean_env(),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise AssertionError(f"aidmesh {' '.join(args)} exited with {proc.returncode}: "
                                 f"{err.decode(errors='replace')}")
        return out.decode()

    async def token(self, role: str = "admin") -> str:
        """An API token of ``role``: the printed admin token, else one made by the CLI."""
        if role not in self._tokens:
            printed = self.admin_token if role == "admin" else None
            self._tokens[role] = printed or (await self.cli(
                "token", "create", "--role", role, "--name", f"browser test {role}"
            )).strip().splitlines()[-1]
        return self._tokens[role]

    async def api(self, method: str, path: str, *, role: str | None = "admin",
                  json: Any = None) -> tuple[int, Any]:
        """One API call with a token of ``role`` (None: anonymous); (status, JSON or text)."""
        assert self.http is not None, "the node is stopped"
        headers = {"Authorization": f"Bearer {await self.token(role)}"} if role else {}
        async with self.http.request(method, self.url + path, json=json,
                                     headers=headers) as r:
            body: Any = await r.text()
            if "json" in r.headers.get("Content-Type", ""):
                body = await r.json(content_type=None)
            return r.status, body

    async def has_log(self, author: str) -> bool:
        status, body = await self.api("GET", "/api/v1/logs", role="reader")
        return status == 200 and any(log["author"] == author for log in body["logs"])

    async def peer_with(self, other: NodeProcess, *, timeout: float = 20.0) -> None:
        """Both nodes trust each other (POST /api/v1/peers with each admin token), then
        wait until each holds the other's log, so gossip is known to flow both ways."""
        for me, peer in ((self, other), (other, self)):
            status, body = await me.api("POST", "/api/v1/peers",
                                        json={"id": peer.node_id, "url": peer.url})
            assert status == 201, f"{me.url} refused peer {peer.url}: {status} {body}"
        for me, peer in ((self, other), (other, self)):
            await wait_until(lambda me=me, peer=peer: me.has_log(peer.node_id),
                             timeout=timeout, what=f"{me.url} to pull {peer.url}'s log")


async def _collect(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
    while stream is not None and (line := await stream.readline()):
        sink.append(line.decode(errors="replace").rstrip("\r\n"))


@dataclass
class NodeFactory:
    """Starts nodes in one test's temporary dir and stops them all when it ends."""

    root: Path
    started: list[NodeProcess] = field(default_factory=list)

    async def start(self, name: str, **settings: Any) -> NodeProcess:
        """A new node in ``root/name``; settings go to aidmesh.toml (name defaults to it)."""
        node = await NodeProcess.start(self.root / name, **{"name": name, **settings})
        self.started.append(node)
        return node

    async def stop_all(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.started), return_exceptions=True)
