"""The browser tests' fixtures, a pytest plugin loaded by tests/conftest.py.

Apart from tests/browser.py (the helpers a test imports) so that pytest imports this
module itself and rewrites its asserts. All three run on the session event loop (see
tests/browser.py): ``chromium`` once per run, ``browser`` and ``nodes`` once per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from browser import BrowserSession, Chromium, chromium_path
from node_process import NodeFactory
from playwright.async_api import async_playwright


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Chromium]:
    """Playwright and Chromium, started once per run on the session loop."""
    path = chromium_path()
    async with async_playwright() as pw:
        holder = Chromium(path, pw)
        await holder.connected()
        yield holder
        if holder.browser is not None and holder.browser.is_connected():
            await holder.browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium: Chromium) -> AsyncIterator[BrowserSession]:
    session = BrowserSession(await chromium.connected())
    try:
        yield session
    finally:
        await session.close()
    assert not session.outside, ("pages asked for hosts other than 127.0.0.1 (every asset "
                                 f"must come from the node): {session.outside}")


@pytest_asyncio.fixture(loop_scope="session")
async def nodes(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """``await nodes.start("a", **settings)``: real `aidmesh run` processes, stopped after."""
    factory = NodeFactory(tmp_path)
    try:
        yield factory
    finally:
        await factory.stop_all()
