"""The browser harness itself, on two real peered nodes and a tiny page of known bytes.

These prove tests/browser.py (Chromium from Debian, screenshots, axe-core, the byte
budget, locales, JavaScript off, no host but 127.0.0.1) until the web app's page flows
replace them.
"""

from __future__ import annotations

import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from browser import (
    BROWSER,
    DESKTOP,
    PHONE,
    BrowserSession,
    Chromium,
    NodeFactory,
    assert_accessible,
    assert_fits_width,
    axe_check,
    page_bytes,
    page_resources,
    scripts_off,
    shot,
)

pytestmark = BROWSER

CSS = "main{max-width:40rem;margin:auto}" * 40
JS = "document.getElementById('out').textContent = 'script ran';" * 10
CLEAN = ("<!doctype html><html lang=en><head><meta charset=utf-8>"
         "<meta name=viewport content='width=device-width'><title>Tiny</title>"
         "<link rel=stylesheet href=/app.css><script src=/app.js defer></script></head>"
         "<body><main><h1>Tiny page</h1><p id=out>no script</p>"
         "<img src=/logo.png alt='Logo'>"
         "<label for=q>Search</label><input id=q name=q></main></body></html>")
INLINE = ("<!doctype html><html lang=en><head><title>Inline</title></head><body><main>"
          "<h1 id=h>Inline</h1><script>document.title = 'ran'</script></main></body></html>")
BROKEN = ("<!doctype html><html lang=en><head><title>Broken</title></head><body><main>"
          "<h1>Broken</h1><input id=nolabel><img src=/logo.png></main></body></html>")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 2000  # not a real image: only its bytes matter
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'"


@asynccontextmanager
async def tiny_site(seen: list[str]) -> AsyncIterator[str]:
    """A page with CSS, JS and an image of known sizes under a strict CSP, on 127.0.0.1;
    ``seen`` gets each request's Accept-Language."""
    def reply(body: str | bytes, ctype: str):
        async def handler(request: web.Request) -> web.Response:
            seen.append(request.headers.get("Accept-Language", ""))
            data = body.encode() if isinstance(body, str) else body
            return web.Response(body=data, content_type=ctype,
                                headers={"Content-Security-Policy": CSP})
        return handler

    app = web.Application()
    app.add_routes([web.get("/", reply(CLEAN, "text/html")),
                    web.get("/broken", reply(BROKEN, "text/html")),
                    web.get("/inline", reply(INLINE, "text/html")),
                    web.get("/app.css", reply(CSS, "text/css")),
                    web.get("/app.js", reply(JS, "text/javascript")),
                    web.get("/logo.png", reply(PNG, "image/png"))])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">I", data[16:20])[0]


async def test_two_peered_nodes_in_chromium(chromium: Chromium, browser: BrowserSession,
                                            nodes: NodeFactory):
    a = await nodes.start("a", gossip_interval_s=1.0)
    b = await nodes.start("b", gossip_interval_s=1.0)
    assert a.admin_token and b.admin_token and a.node_id.startswith("am")
    assert a.setup_link is None or a.setup_link.startswith(a.url + "/join/")
    await a.peer_with(b)
    status, body = await a.api("GET", "/api/v1/peers", role="reader")
    assert status == 200 and [p["id"] for p in body["peers"]] == [b.node_id]

    timings = {"chromium launch": chromium.launch_s}
    for node in (a, b):
        for width in (PHONE, DESKTOP):
            started = time.perf_counter()
            page = await browser.new_page(width)
            timings[f"context + page {width}"] = time.perf_counter() - started
            started = time.perf_counter()
            response = await page.goto(node.url + "/healthz")
            timings[f"load /healthz {width}"] = time.perf_counter() - started
            assert response is not None and response.status == 200
            assert node.node_id in await page.content()
            path = await shot(page, f"smoke-healthz-{node.home.name}")
            assert path.name == f"smoke-healthz-{node.home.name}-{width}.png"
            assert png_width(path.read_bytes()) >= width  # JSON has no <meta viewport>
            response = await page.goto(node.url + "/api/v1/openapi.json")
            assert response is not None and response.status == 200
            await shot(page, f"smoke-openapi-{node.home.name}", full_page=False)  # 180 KB
    print("\n" + "\n".join(f"{k}: {v * 1000:.0f} ms" for k, v in timings.items()))
    assert browser.errors == [] and browser.outside == []


async def test_axe_bytes_locale_and_outside_hosts(browser: BrowserSession):
    seen: list[str] = []
    async with tiny_site(seen) as site:
        page = await browser.new_page(PHONE, locale="es-ES")
        await page.goto(site + "/")
        await page.wait_for_load_state("load")
        assert await page.text_content("#out") == "script ran"
        assert not await scripts_off(page)
        await assert_fits_width(page)
        assert png_width((await shot(page, "smoke-tiny")).read_bytes()) == PHONE
        assert seen and all(lang.startswith("es-ES") for lang in seen), seen
        # axe-core runs under a strict CSP and finds nothing on a clean page...
        assert await axe_check(page) == []
        await assert_accessible(page)
        # ...and names the rule, the impact and the element on a broken one.
        await page.goto(site + "/broken")
        found = await axe_check(page)
        assert any(f.startswith("label (critical)") and "#nolabel" in f for f in found), found
        assert any(f.startswith("image-alt (critical)") for f in found), found
        with pytest.raises(AssertionError, match=r"(?s)/broken:.*label \(critical\)"):
            await assert_accessible(page)

        # The strict CSP blocks an inline script, and the session reports it.
        assert browser.errors == []
        await page.goto(site + "/inline")
        assert await page.title() == "Inline"
        assert len(browser.csp_violations()) == 1 and "inline script" in browser.errors[0]
        browser.errors.clear()

        # The byte budget counts HTML + CSS + JS exactly, not images.
        page = await browser.new_page(DESKTOP)
        await page.goto(site + "/")
        await page.wait_for_load_state("load")
        kinds = {r.url.rsplit("/", 1)[1]: r.bytes for r in await page_resources(page)
                 if r.initiator != "other"}  # not the browser's own /favicon.ico
        assert kinds == {"": len(CLEAN), "app.css": len(CSS), "app.js": len(JS),
                         "logo.png": len(PNG)}
        assert await page_bytes(page) == len(CLEAN) + len(CSS) + len(JS)

        # A page asking for another host reaches nothing and is reported.
        blank = await page.context.new_page()
        await blank.set_content("<link rel=stylesheet href='https://cdn.example.org/x.css'>")
        assert browser.outside == ["https://cdn.example.org/x.css"]
        browser.outside.clear()  # seen: the teardown check would otherwise fail this test


async def test_pages_load_with_javascript_off(browser: BrowserSession, nodes: NodeFactory):
    a = await nodes.start("a")
    page = await browser.new_page(PHONE, js=False)
    response = await page.goto(a.url + "/healthz")
    assert response is not None and response.status == 200
    assert a.node_id in await page.content()
    await shot(page, "smoke-nojs-healthz")
    seen: list[str] = []
    async with tiny_site(seen) as site:  # the switch is real: the same page's script
        await page.goto(site + "/")      # runs with JavaScript on (test above), not here
        await page.wait_for_load_state("load")
        assert await page.text_content("#out") == "no script"
        assert await scripts_off(page)
        with pytest.raises(AssertionError, match="JavaScript off"):
            await axe_check(page)  # axe-core would hang: it needs its timers
