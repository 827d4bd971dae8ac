"""Arabic, right to left, in a real browser: the pages mirror, nothing is clipped or
wider than a 360 px phone, axe-core finds nothing serious, and screenshots show it."""

from __future__ import annotations

from browser import BROWSER, PHONE, assert_accessible, assert_fits_width, shot
from playwright.async_api import expect
from web_flows import create_account, post

pytestmark = BROWSER

PAGES = ["/", "/browse", "/post/offer", "/post/need", "/claims", "/account", "/people",
         "/areas"]


async def test_arabic_pages_are_right_to_left_and_fit_a_phone(browser, nodes):
    a = await nodes.start("a")
    page = await browser.new_page(PHONE, locale="ar-EG")
    await create_account(page, a.setup_link, "سلمى")
    assert await page.get_attribute("html", "dir") == "rtl"
    assert await page.get_attribute("html", "lang") == "ar"
    item = await post(page, "offer", {"title": "٢٠ رغيف خبز", "category": "food/bread",
                                      "quantity": "٢٠", "unit": "loaf"})
    for path in [*PAGES, item.removeprefix(a.url)]:
        await page.goto(a.url + path)
        await assert_fits_width(page)
        await assert_accessible(page)
        # Nothing cut off: no element's text runs past its own box sideways.
        clipped = await page.evaluate("""() => [...document.querySelectorAll(
            'main *, header *, footer *')].filter(e => !e.closest('.sr') &&
            !['INPUT', 'TEXTAREA', 'SELECT'].includes(e.tagName) &&
            getComputedStyle(e).overflowX !==
            'visible' && e.scrollWidth > e.clientWidth + 1).map(e => e.outerHTML.slice(0, 80))""")
        assert clipped == [], (path, clipped)
        await shot(page, "rtl" + (path.replace("/", "-") if path != "/" else "-today"))
    # Mirrored: the navigation starts at the right edge, cards have their stripe there.
    await page.goto(a.url + "/browse")
    first = await page.locator("nav a").first.bounding_box()
    assert first and first["x"] > PHONE / 2, first
    stripe = await page.locator("article.card").first.evaluate(
        "e => [getComputedStyle(e).borderRightWidth, getComputedStyle(e).borderLeftWidth]")
    assert stripe == ["5px", "1px"], stripe
    await expect(page.locator("#browse-results")).to_contain_text("٢٠ رغيف خبز")
