"""The admin pages in a real browser (headless Chromium) on three `aidmesh run` nodes.

Issue 13's admin flows: A's admin makes an invite code on the peers page and B's admin
pastes it on B's; both list each other. B invites C the same way, so an offer posted at
A reaches C's pages through B. An admin removes a coordinator, whose next page load goes
to sign-in. Every admin page passes axe-core (no serious or critical finding), fits a
360 px screen, and is photographed at 360 and 1280 px into test-artifacts/screens/.
"""

from __future__ import annotations

import time

from browser import (
    BROWSER,
    DESKTOP,
    PHONE,
)
from playwright.async_api import Page, expect
from web_flows import check, create_account, submit

pytestmark = BROWSER

FAST = {"gossip_interval_s": 1.0}
ADMIN_PAGES = ("admin", "admin/node", "admin/peers", "admin/coalition", "people",
               "admin/tokens", "admin/moderation", "admin/webhooks", "admin/settings")


async def node_id(page: Page, base: str) -> str:
    await page.goto(base + "/admin/node")
    return await page.input_value("#node-id")


async def invite_code(page: Page, base: str) -> str:
    await page.goto(base + "/admin/peers")
    await submit(page, "/admin/peers/invite")
    return await page.input_value("#invite-code")


async def join(page: Page, base: str, code: str) -> None:
    await page.goto(base + "/admin/peers")
    await page.fill("#f-code", code)
    await submit(page, "/admin/peers/join")
    await expect(page.locator(".notice")).to_contain_text("now trust each other")


async def eventually(page: Page, url: str, text: str, timeout: float = 30.0) -> None:
    """Reload ``url`` until its main region shows ``text`` (a page without live
    updates), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        await page.goto(url)
        if text in await page.locator("main").inner_text():
            return
        assert time.monotonic() < deadline, f"{text!r} never appeared on {url}"
        await page.wait_for_timeout(250)  # a poll interval, not a pass/fail timing


async def test_admins_peer_by_code_and_run_their_nodes(browser, nodes):
    a = await nodes.start("a", **FAST)
    b = await nodes.start("b", **FAST)
    c = await nodes.start("c", **FAST)
    admin_a = await browser.new_page(PHONE)
    admin_b = await browser.new_page(DESKTOP)
    admin_c = await browser.new_page(PHONE)
    for page, node, name in ((admin_a, a, "Ana"), (admin_b, b, "Bea"), (admin_c, c, "Cy")):
        assert node.setup_link, node.output()
        await create_account(page, node.setup_link, name)
    id_a, id_b, id_c = (await node_id(admin_a, a.url), await node_id(admin_b, b.url),
                        await node_id(admin_c, c.url))

    # A's admin makes a code; B's admin pastes it; both list each other.
    code = await invite_code(admin_a, a.url)
    await check(admin_a, "admin-peers-invite")
    await join(admin_b, b.url, code)
    await expect(admin_b.locator(f'[id="peer-{id_a}"]')).to_be_visible()
    await admin_a.goto(a.url + "/admin/peers")
    await expect(admin_a.locator(f'[id="peer-{id_b}"]')).to_be_visible()
    # B invites C the same way.
    await join(admin_c, c.url, await invite_code(admin_b, b.url))
    await expect(admin_c.locator(f'[id="peer-{id_b}"]')).to_be_visible()
    await admin_b.goto(b.url + "/admin/peers")
    await expect(admin_b.locator(f'[id="peer-{id_c}"]')).to_be_visible()

    # An offer posted at A reaches C's pages through B.
    await admin_a.goto(a.url + "/post/offer")
    await admin_a.fill("#f-title", "Spare blankets from A")
    await admin_a.fill("#f-category", "Bread and baked goods")
    await admin_a.fill("#f-quantity", "12")
    await submit(admin_a, "/post/offer")
    await eventually(admin_c, c.url + "/browse", "Spare blankets from A")
    await eventually(admin_c, c.url + "/admin/coalition", "through")
    await expect(admin_c.locator("main")).to_contain_text(id_a[:8])

    # Every admin page: axe-core, 360 px, screenshots at both widths.
    for path in ADMIN_PAGES:
        await admin_c.goto(f"{c.url}/{path}")
        await expect(admin_c.locator("h1")).to_be_visible()
        await check(admin_c, "admin-" + (path.removeprefix("admin/") if "/" in path
                                         else {"admin": "hub"}.get(path, path)))


async def test_a_removed_coordinator_is_signed_out_at_once(browser, nodes):
    a = await nodes.start("a", **FAST)
    admin = await browser.new_page(PHONE)
    await create_account(admin, a.setup_link, "Ana")
    await admin.goto(a.url + "/people")
    await admin.select_option("#f-role", "coordinator")
    await submit(admin, "/people/invite")
    link = await admin.input_value("#invite-link")
    coordinator = await browser.new_page(PHONE)
    await create_account(coordinator, link, "Bo")
    await coordinator.goto(a.url + "/post/offer")
    await expect(coordinator.locator("h1")).to_be_visible()

    await admin.goto(a.url + "/people")
    person = admin.locator("li", has_text="Bo").filter(has=admin.locator("form")).first
    await check(admin, "admin-people-sessions")
    async with admin.expect_navigation():
        await person.locator('form[action$="/revoke"] button').click()
    await expect(admin.locator(".notice")).to_contain_text("signed out everywhere")

    await coordinator.reload()
    assert "/signin" in coordinator.url, coordinator.url
