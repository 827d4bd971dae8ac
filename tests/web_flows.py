"""Steps the browser tests share: a person's account, a form sent, a page checked.

Imported by the tests/test_web_*_browser.py modules (see tests/browser.py for the harness).
"""

from __future__ import annotations

import re

from browser import DESKTOP, PHONE, assert_accessible, assert_fits_width, page_bytes, shot
from playwright.async_api import Page, expect

PASSWORD = "a long enough passphrase"


async def check(page: Page, name: str, *, budget: bool = True) -> None:
    """Budget (unless told not to), phone width, axe-core, then screenshots at both
    widths (axe again on desktop)."""
    if budget:
        assert await page_bytes(page) < 100_000, f"{page.url} weighs over 100 KB"
    await assert_fits_width(page)
    await assert_accessible(page)
    await shot(page, name)
    await page.set_viewport_size({"width": DESKTOP, "height": 800})
    await shot(page, name)
    await assert_accessible(page)
    await page.set_viewport_size({"width": PHONE, "height": 740})


async def submit(page: Page, form: str) -> None:
    """Press the submit button of the form whose action is ``form`` and wait for the
    page it leads to."""
    async with page.expect_navigation():
        await page.locator(f'form[action="{form}"] button[type=submit]').first.click()


async def create_account(page: Page, link: str, name: str) -> None:
    await page.goto(link)
    await page.fill("#f-name", name)
    await page.fill("#f-password", PASSWORD)
    await page.fill("#f-password2", PASSWORD)
    async with page.expect_navigation():
        await page.locator("main form button[type=submit]").click()
    await expect(page.locator("h1")).to_be_visible()


async def post(page: Page, kind: str, fields: dict[str, str]) -> str:
    """Fill the post form (text fields by id, selects by value) and return the new
    item's URL."""
    base = "/".join(page.url.split("/")[:3])
    await page.goto(f"{base}/post/{kind}")
    for name, value in fields.items():
        target = page.locator(f"#f-{name}")
        if await target.evaluate("e => e.tagName") == "SELECT":
            await target.select_option(value)
        else:
            await target.fill(value)
    await submit(page, f"/post/{kind}")
    assert re.search(rf"/{kind}s/[0-9a-f]{{64}}", page.url), page.url
    return page.url.split("?")[0]
