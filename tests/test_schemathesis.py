"""schemathesis against a live node: node/http/openapi.json and the API agree, and no input
of any shape gets a 5xx.

A real node (its own data dir, the real edge of node/serve.py) runs on 127.0.0.1 in a
thread; schemathesis's engine (what `schemathesis run --checks all` runs, through its Python
API) goes through every documented operation with an admin token: examples, coverage,
fuzzing and stateful phases (the spec's links plus those inferred from Location headers),
every check. Any finding fails the test, except those `excepted` names, each with the
reason the finding is wrong, checked against the request.

Nothing leaves 127.0.0.1: schemathesis only calls the node, and the peer and webhook URLs
the node would store are pointed at a closed loopback port first (`Guard`), so the gossip
loop and the webhook worker fail fast on them.

`SCHEMATHESIS_EXAMPLES=100 SCHEMATHESIS_SEED=7 pytest tests/test_schemathesis.py -s` explores
further (by default EXAMPLES per operation and a fixed seed: a failure reproduces).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h3
import schemathesis
from aiohttp import web
from conftest import NEED, OFFER, NodeHome, init_home, make_log
from hypothesis import strategies as st
from schemathesis.engine import events
from schemathesis.engine import from_schema as engine_for
from schemathesis.specs.openapi.formats import unregister_string_format

from node.app import create_app
from node.config import load_config
from node.serve import GuardedSite, Limits
from node.services import listings, peers, webhooks
from node.services.errors import Invalid
from node.services.values import parse_time
from protocol import Identity
from protocol.taxonomy import STARTER_TAXONOMY

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "30"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261123"))
STATEFUL_STEPS = 20


# -- the live node ----------------------------------------------------------------------------


class LiveNode:
    """The node's app behind the real edge (GuardedSite), on its own event loop and thread,
    so schemathesis's blocking requests can call it from the test's thread."""

    def __init__(self, home: NodeHome) -> None:
        self.home, self.loop = home, asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> LiveNode:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        config = load_config(self.home.path)
        limits = Limits.of(config)
        self.runner = web.AppRunner(create_app(config, self.home.identity),
                                    keepalive_timeout=limits.header_timeout_s)
        await self.runner.setup()
        site = GuardedSite(self.runner, "127.0.0.1", 0, limits)
        await site.start()
        self.url = f"http://127.0.0.1:{site._bound_port}"

    def __exit__(self, *exc: object) -> None:
        try:
            if self.runner is not None:
                # Gossip and webhook workers stop here; a shutdown that hangs fails the test.
                asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(
                    timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()


def seed(home: NodeHome) -> None:
    """An offer of ours, and another group's offer, need and claim on our offer, so the
    links from the lists (spec `links`) reach listings and a claim of each side."""
    ledger = home.ledger()
    try:
        mine = ledger.transaction(lambda c: listings.post(ledger, c, "offer", OFFER))
    finally:
        ledger.close()
    other, quantity = Identity.generate(), mine["quantity"]
    home.ingest(make_log(other, [
        ("profile", {"name": "Other group", "seal_key": other.seal_public()}),
        ("offer", {"title": "Spare ladder", "category": "tools", "action": "lend"}),
        ("need", {**NEED, "title": "Bread for the shelter", "category": "food/bread",
                  "quantity": {"value": "10", "unit": quantity["unit"]}}),
        ("claim", {"target": bytes.fromhex(mine["id"]), "target_author": home.identity.public,
                   "quantity": {"value": "2", "unit": quantity["unit"]}}),
    ]))


# -- what schemathesis may send ----------------------------------------------------------------


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port held bound but not listening: a connection to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def h3_cells() -> st.SearchStrategy[str]:
    """Format h3-cell: real cells of resolution 0-8, pentagons included."""
    return st.builds(
        lambda lat, lng, res: h3.latlng_to_cell(lat, lng, res),
        st.floats(-89.9, 89.9), st.floats(-179.9, 179.9), st.integers(0, 8),
    ) | st.sampled_from(sorted(h3.get_pentagons(8)))


def loopback_urls(port: int) -> st.SearchStrategy[str]:
    """Format http-url, pointed where nothing answers: 127.0.0.1 on a closed port."""
    segment = st.from_regex(r"[a-z0-9._~-]{1,12}", fullmatch=True)
    return st.builds(lambda parts: f"http://127.0.0.1:{port}/" + "/".join(parts),
                     st.lists(segment, max_size=3))


def _takes(check: Callable[[Any], Any], value: Any) -> bool:
    try:
        check(value)
    except Invalid:
        return False
    return True


@dataclass(eq=False)  # hashable: schemathesis keeps its hooks in sets
class Guard:
    """A before_call hook: keeps every request on 127.0.0.1 and the admin token alive."""

    port: int
    admin_token_id: str
    rewritten: int = 0

    def _loopback(self, url: Any, check: Callable[[Any], Any]) -> Any:
        """A URL the node would store, pointed at the closed loopback port (path kept)."""
        base = f"http://127.0.0.1:{self.port}"
        if not _takes(check, url):
            return url  # refused at creation: never called
        candidate = base + urlsplit(url).path
        candidate = candidate if _takes(check, candidate) else base
        self.rewritten += candidate != url
        return candidate

    def __call__(self, context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        path = case.operation.path
        if case.method == "POST" and path in ("/api/v1/peers", "/api/v1/webhooks"):
            if isinstance(case.body, dict) and "url" in case.body:
                check = peers.check_url if path.endswith("peers") else webhooks.check_url
                url = self._loopback(case.body["url"], check)
                if url != case.body["url"]:
                    case.body = {**case.body, "url": url}
        if case.method == "DELETE" and path == "/api/v1/tokens/{id}":
            # Revoking the token schemathesis authenticates with would turn every later
            # request into a 401: any other id is fair game.
            if (case.path_parameters or {}).get("id") == self.admin_token_id:
                case.path_parameters = {**case.path_parameters, "id": "0" * 12}


# -- findings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    operation: str  # "POST /api/v1/offers"
    check: str  # "positive_data_acceptance"
    title: str  # "Schema-valid request rejected"
    status: int | None
    problem: dict[str, Any] | None  # the problem+json body, if the node sent one
    message: str
    curl: str

    def key(self) -> tuple[str, str, str, str]:
        code = (self.problem or {}).get("type", "")
        return self.operation, self.check, self.title, f"{self.status} {code}"


def _problem(response: Any) -> dict[str, Any] | None:
    if response is None or "problem+json" not in response.headers.get("content-type", [""])[0]:
        return None
    body = response.json()
    return body if isinstance(body, dict) else None


# Refusals of schema-valid requests that depend on what the node holds, not on the request's
# shape (whose a listing is, the unit it is counted in): no schema can state them, and the
# spec lists each as a 422 of the operation.
STATE_CODES = frozenset({"own-listing", "not-own", "unit-mismatch"})


@dataclass(frozen=True)
class Facts:
    """What the node under test says about itself, for the exceptions that depend on it."""

    base_url: str
    token: str
    node_id: str

    def get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.base_url}/api/v1/{path}",
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError:
            return None  # gone (withdrawn, erased): no excuse for the finding

    def has_quantity(self, kind: str, listing_id: str) -> bool:
        return "quantity" in (self.get(f"{kind}s/{listing_id}") or {"quantity": None})

    def count(self, collection: str) -> int:
        return len(self.get(collection)[collection])


def excepted(f: Finding, case: Any, facts: Facts) -> str | None:
    """Why a finding is wrong, for the few that are (None: a real finding). Each rule is as
    narrow as its reason: one check, one status, one problem type, and the value at fault
    checked to be what the reason says."""
    if f.check != "positive_data_acceptance":
        return None
    problem = f.problem or {}
    code = problem.get("type", "").removeprefix("urn:aidmesh:problem:")
    body = case.body if isinstance(case.body, dict) else {}
    # An opaque cursor is valid only if this node handed it out (the spec says so); no
    # schema can list those, so schemathesis makes up well-formed ones.
    if f.status == 400 and problem.get("field") == "cursor":
        return "made-up cursor"
    # Which id is this node's own depends on the node that answers, not on the request:
    # a node cannot block or peer with itself (schemathesis read the id from GET /node).
    if (f.status == 422 and f.operation in ("POST /api/v1/blocks", "POST /api/v1/peers")
            and facts.node_id in (body.get("author"), body.get("id"))):
        return "this node's own id"
    if f.status == 422 and code in STATE_CODES:
        return "depends on the listings held"
    # A quantity on a claim on a listing that has none (it is taken whole).
    kind = {"POST /api/v1/offers/{id}/claims": "offer",
            "POST /api/v1/needs/{id}/claims": "need"}.get(f.operation)
    if (f.status == 422 and kind and problem.get("field") == "quantity"
            and not facts.has_quantity(kind, case.path_parameters["id"])):
        return "depends on the listings held"
    # The node keeps at most MAX_WEBHOOKS; a full node refuses one more, whatever its shape.
    if (f.status == 422 and f.operation == "POST /api/v1/webhooks"
            and facts.count("webhooks") >= webhooks.MAX_WEBHOOKS):
        return "a full node"
    # Categories and units are vocabularies the spec links (GET /api/v1/categories, /units:
    # the starter lists plus what a group declares in its config) rather than lists, so a
    # well-formed path or unit outside them is schema-valid and documented as a 422.
    if f.status == 422 and code == "unknown-category" and body.get("category") is not None \
            and body["category"] not in STARTER_TAXONOMY:
        return "outside the linked vocabularies"
    if f.status == 422 and code == "unknown-unit":
        return "outside the linked vocabularies"
    # Relations between values, and the clock: JSON Schema has no way to say "until not
    # before from" or "not in the past".
    if f.status == 422 and problem.get("field") in ("available_from", "available_until"):
        until = _ms(body.get("available_until"))
        start = _ms(body.get("available_from"))
        if code == "in-the-past" and until is not None and until < time.time() * 1000:
            return "a time in the past"
        if start is not None and until is not None and until < start:
            return "until before from"
        # The spec's pattern keeps years before 1970 out; 1970-01-01T00:30+01:00 is still
        # 1969 in UTC, which no pattern on the text can tell.
        if min(t for t in (start, until, 0) if t is not None) < 0:
            return "before 1970 in UTC"
    return None


def _ms(value: Any) -> float | None:
    return parse_time(value, "t") if _takes(lambda v: parse_time(v, "t"), value) else None


@dataclass
class Run:
    facts: Facts
    cases: int = 0
    operations: set[str] = field(default_factory=set)
    findings: dict[tuple, Finding] = field(default_factory=dict)
    excepted: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    links: str = "stateful phase not run"

    def scenario(self, recorder: Any) -> None:
        self.cases += len(recorder.cases)
        for case_id, node in recorder.cases.items():
            operation = node.value.operation
            self.operations.add(f"{operation.method.upper()} {operation.path}")
            for check in recorder.checks.get(case_id, []):
                if check.status.name != "FAILURE" or check.failure_info is None:
                    continue
                interaction = recorder.interactions.get(case_id)
                response = interaction.response if interaction is not None else None
                failure = check.failure_info.failure
                finding = Finding(
                    f"{node.value.method} {operation.path}", check.name, failure.title,
                    response.status_code if response is not None else None,
                    _problem(response), failure.message, check.failure_info.code_sample)
                reason = excepted(finding, node.value, self.facts)
                if reason is not None:
                    self.excepted[reason] = self.excepted.get(reason, 0) + 1
                else:
                    self.findings.setdefault(finding.key(), finding)

    def report(self) -> str:
        lines = [f"{len(self.findings)} distinct schemathesis findings:"]
        for f in self.findings.values():
            lines += [f"- {f.operation}: {f.check} ({f.title}) -> {f.status} "
                      f"{(f.problem or {}).get('type', '')} {(f.problem or {}).get('detail', '')}",
                      "    " + re.sub(r"\s+", " ", f.message)[:400], "    " + f.curl[:600]]
        return "\n".join(lines + self.errors)


def run_schemathesis(base_url: str, token: str, node_id: str) -> Run:
    config = schemathesis.Config.from_dict({
        "seed": SEED, "cache": {"enabled": False}, "workers": 1, "request-timeout": 20,
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": EXAMPLES, "database": "none"},
        "checks": {"enabled": True},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        # An SSE stream never ends: schemathesis reads it until this timeout.
        "operations": [{"include-path": "/api/v1/events", "request-timeout": 0.5}],
    })
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json", config=config)
    schema.config.update(base_url=base_url)
    run = Run(Facts(base_url, token, node_id))
    for event in engine_for(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            run.scenario(event.recorder)
        elif isinstance(event, events.PhaseStarted) and event.payload is not None:
            p = event.payload
            run.links = (f"{p.transitions_selected} of {p.transitions_total} links "
                         f"({p.inferred_transitions} inferred)")
        elif isinstance(event, events.NonFatalError):
            run.errors += [e for e in [f"error in {event.label}: {event.value!r}"]
                           if e not in run.errors]
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
    return run


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    # Rate limits off: this test is about shapes, not pace (tests/test_rate_limits.py).
    home = init_home(tmp_path / "node", api_rate_per_s=0.0, api_rate_per_address_s=0.0)
    admin_id = home.admin_token.split("_")[1]
    seed(home)
    with closed_port() as port, LiveNode(home) as node:
        guard = Guard(port, admin_id)
        schemathesis.openapi.format("h3-cell", h3_cells())
        schemathesis.openapi.format("http-url", loopback_urls(port))
        schemathesis.hook("before_call")(guard)
        started = time.monotonic()
        try:
            run = run_schemathesis(node.url, home.admin_token, home.node_id)
        finally:
            schemathesis.hooks.GLOBAL_HOOK_DISPATCHER.unregister(guard)
            unregister_string_format("h3-cell")
            unregister_string_format("http-url")
        elapsed = time.monotonic() - started
    print(f"schemathesis {schemathesis.__version__}: {run.cases} cases over "
          f"{len(run.operations)} operations in {elapsed:.0f} s (seed {SEED}, {EXAMPLES} "
          f"examples per operation); excepted: {run.excepted or 'none'}; "
          f"URLs pointed at loopback: {guard.rewritten}; stateful: {run.links}")
    # All but the document itself, which schemathesis loads rather than tests
    # (test_openapi.py checks the node serves exactly node/http/openapi.json).
    spec = json.loads((Path(__file__).parent.parent / "node/http/openapi.json").read_text())
    expected = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
                for method in item if method in ("get", "post", "patch", "delete")}
    expected.discard("GET /api/v1/openapi.json")
    assert run.operations == expected, "operations not exercised: " + ", ".join(
        sorted(expected - run.operations))
    assert not run.findings and not run.errors, run.report()
