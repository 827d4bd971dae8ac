"""Browser-test harness: headless Debian Chromium driven by Playwright, over real nodes.

A browser test module::

    from browser import BROWSER, PHONE, assert_accessible, page_bytes, shot

    pytestmark = BROWSER   # see "Why" below; fixtures chromium, browser, nodes come from
                           # tests/browser_plugin.py (tests/conftest.py loads it)

    async def test_post_a_need(browser, nodes):
        a = await nodes.start("a", gossip_interval_s=1.0)       # a real `aidmesh run`
        page = await browser.new_page(PHONE, locale="es-ES")   # Accept-Language: es-ES
        await page.goto(a.setup_link)
        await shot(page, "setup")              # test-artifacts/screens/setup-360.png
        await assert_accessible(page)          # no serious or critical axe-core finding
        assert await page_bytes(page) < 100_000

Why `pytestmark = BROWSER` (the session event loop): one Chromium serves the whole run
(starting Playwright and Chromium takes 0.8-2 s on 2 cores, a new context 0.1-0.5 s),
and a Playwright connection belongs to the loop that started it, while pytest-asyncio
gives each test its own loop by default. So browser tests run on the session loop, and
every async fixture they use must be loop_scope="session" (tests/browser_plugin.py's
are). conftest's in-process fixtures (make_node, cluster) live on the per-test loop: do
not mix them into a browser test; start nodes with `nodes` instead.

Chromium is /usr/bin/chromium (Debian's; .ci/run installs it) or $AIDMESH_CHROMIUM. When
it is missing the browser tests fail; AIDMESH_SKIP_BROWSER=1 skips them (never in CI).
The browser may reach 127.0.0.1 only: other hosts do not resolve, and a test whose pages
asked for one (a CDN font, say) fails at teardown, naming the URL.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.async_playwright import Axe
from node_process import ROOT, NodeFactory, NodeProcess
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

__all__ = ["BROWSER", "DESKTOP", "PHONE", "BrowserSession", "Chromium", "NodeFactory",
           "NodeProcess", "Resource", "assert_accessible", "assert_fits_width", "axe_check",
           "chromium_path", "page_bytes", "page_resources", "scripts_off", "shot"]

BROWSER = pytest.mark.asyncio(loop_scope="session")
PHONE, DESKTOP = 360, 1280
HEIGHTS = {PHONE: 740, DESKTOP: 800}
DEFAULT_CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
# Root runs need --no-sandbox; the rest keep Chromium off every network but 127.0.0.1
# (this closed network refuses its background connections, which then stall it).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CODE_TYPES = ("html", "css", "javascript", "ecmascript")  # what the 100 KB budget counts
SERIOUS = ("serious", "critical")


def chromium_path() -> str:
    """The binary to drive; fails the test (skips it only if AIDMESH_SKIP_BROWSER=1)."""
    if os.environ.get("AIDMESH_SKIP_BROWSER") == "1":
        pytest.skip("AIDMESH_SKIP_BROWSER=1: browser tests skipped (CI never sets it)")
    path = os.environ.get("AIDMESH_CHROMIUM") or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"no Chromium at {path}: the browser tests need Debian's chromium "
                    "(.ci/run installs it; by hand: apt-get install -y "
                    "--no-install-recommends chromium) or AIDMESH_CHROMIUM=/path/to/chrome; "
                    "AIDMESH_SKIP_BROWSER=1 skips them on a machine without one",
                    pytrace=False)
    return path


@dataclass
class Chromium:
    """The run's one Chromium; relaunched if an earlier test crashed it."""

    path: str
    playwright: Playwright
    browser: Browser | None = None
    launch_s: float = 0.0

    async def connected(self) -> Browser:
        if self.browser is None or not self.browser.is_connected():
            started = time.perf_counter()
            self.browser = await self.playwright.chromium.launch(
                executable_path=self.path, headless=True, args=FLAGS)
            self.launch_s = time.perf_counter() - started
        return self.browser


@dataclass
class BrowserSession:
    """One test's view of Chromium: the contexts (cookie jars) it opened, closed after it.

    ``errors`` collects console errors (but failed loads) and uncaught exceptions of every
    page (a blocked inline script shows here as a Content-Security-Policy message);
    ``outside`` every request to a host other than 127.0.0.1, which fails the test at
    teardown.
    """

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    async def new_context(self, width: int = PHONE, *, locale: str = "en-US", js: bool = True,
                          **options: Any) -> BrowserContext:
        """A fresh cookie jar whose pages are ``width`` px wide (PHONE: 360x740, touch,
        honours <meta viewport>; DESKTOP: 1280x800); ``locale`` sets Accept-Language and
        navigator.language; ``js=False`` turns scripts off; options go to Playwright."""
        phone = width < 800
        settings: dict[str, Any] = {
            "viewport": {"width": width, "height": HEIGHTS.get(width, 740 if phone else 800)},
            "locale": locale, "java_script_enabled": js, "is_mobile": phone,
            "has_touch": phone, "device_scale_factor": 1, **options}
        context = await self.browser.new_context(**settings)
        self.contexts.append(context)
        context.on("request", lambda r: self._outside(r.url))
        context.on("page", self._watch)
        return context

    async def new_page(self, width: int = PHONE, *, locale: str = "en-US", js: bool = True,
                       **options: Any) -> Page:
        """A page in a new context (see new_context); ``page.context.new_page()`` opens
        another tab with the same cookies."""
        context = await self.new_context(width, locale=locale, js=js, **options)
        return await context.new_page()

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e]

    def _outside(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            self.outside.append(url)

    def _watch(self, page: Page) -> None:
        def console(message: ConsoleMessage) -> None:
            # A 4xx/5xx answer is logged too ("Failed to load resource"): a form's 422 or
            # a missing favicon is no script error; tests see statuses in responses.
            if message.type == "error" and not message.text.startswith("Failed to load"):
                self.errors.append(f"{page.url}: {message.text}")

        page.on("console", console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()
        self.contexts.clear()


async def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot, whole page by default, at test-artifacts/screens/<name>-<width>.png
    (not committed; CI may keep the directory)."""
    width = (page.viewport_size or {"width": 0})["width"]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    path = ARTIFACTS / "screens" / f"{safe}-{width}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def assert_fits_width(page: Page) -> None:
    """Fail if the page is wider than the screen (a phone would scroll sideways; on PHONE
    a page without <meta name=viewport> lays out 980 px wide and fails here)."""
    width = (page.viewport_size or {"width": 0})["width"]
    wide = await page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= width, f"{page.url} is {wide} px wide on a {width} px screen"


async def scripts_off(page: Page) -> bool:
    """True in a js=False context: its parser reads <noscript> content as elements."""
    return await page.evaluate("""() => { const d = document.createElement('div');
        d.innerHTML = '<noscript><b></b></noscript>';
        return d.firstChild.firstElementChild !== null; }""")


async def axe_check(page: Page, impacts: tuple[str, ...] = SERIOUS) -> list[str]:
    """axe-core's violations of the given impacts on the page as it is now, one readable
    text each: rule id, impact, help, and the CSS selectors of the offending elements.
    axe-core is a script (it waits on timers): with JavaScript off it would hang."""
    if await scripts_off(page):
        raise AssertionError(f"axe-core cannot run on {page.url}: this context has "
                             "JavaScript off; check the same page from a js=True context")
    results = await Axe().run(page)
    found = []
    for v in results.response["violations"]:
        if v.get("impact") in impacts:
            targets = "; ".join(" >> ".join(map(str, n["target"])) for n in v["nodes"])
            found.append(f"{v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]\n"
                         f"    at {targets}")
    return found


async def assert_accessible(page: Page, impacts: tuple[str, ...] = SERIOUS) -> None:
    """Fail listing every serious or critical axe-core violation of the page."""
    found = await axe_check(page, impacts)
    assert not found, f"axe-core on {page.url}:\n" + "\n".join(found)


@dataclass(frozen=True)
class Resource:
    url: str
    content_type: str
    bytes: int
    initiator: str  # navigation, link, script, css, fetch, ...; other: the browser's own


async def page_resources(page: Page) -> list[Resource]:
    """What the current document loaded, from the browser's Resource Timing entries:
    uncompressed body sizes and MIME types (same-origin, so both are given). Measure on a
    context's first visit: a resource the memory cache served may have no entry."""
    entries = await page.evaluate("""() => performance.getEntries()
        .filter(e => e.entryType === 'navigation' || e.entryType === 'resource')
        .map(e => [e.name, e.contentType || '', e.decodedBodySize || 0, e.initiatorType])""")
    return [Resource(*entry) for entry in entries]


async def page_bytes(page: Page) -> int:
    """Uncompressed bytes of the HTML + CSS + JS the current page loaded (the budget;
    measure with JavaScript on, or scripts are not fetched). Not counted: what the
    browser asks for by itself ("other": /favicon.ico, whose 404 page may be HTML)."""
    return sum(r.bytes for r in await page_resources(page)
               if r.initiator != "other" and any(t in r.content_type for t in CODE_TYPES))
