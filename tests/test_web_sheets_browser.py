"""Spreadsheets in and out in a real browser (headless Chromium) on a real `aidmesh run`.

A coordinator uploads a sheet of 200 rows, 3 of them wrong: the preview names exactly
those 3 rows and what is wrong in words, posts nothing, and once confirmed posts the 197
others. The export of the posted offers, downloaded from the export page and uploaded
again, posts nothing new. Both pages pass axe-core (no serious or critical finding), fit
a 360 px screen and are photographed at 360 and 1280 px into test-artifacts/screens/.
"""

from __future__ import annotations

from browser import BROWSER, PHONE, shot
from playwright.async_api import Page, expect
from sheet_helpers import BAD_ROWS, big_sheet
from web_flows import check, create_account

pytestmark = BROWSER


async def upload(page: Page, base: str, name: str, data: bytes) -> None:
    await page.goto(base + "/import")
    await page.set_input_files("#f-file", files=[{"name": name, "mimeType": "text/csv",
                                                  "buffer": data}])
    async with page.expect_navigation():
        await page.get_by_role("button", name="Show the preview").click()
    await expect(page.locator("h1")).to_have_text("Import from a spreadsheet")


async def posted_count(node) -> int:
    """This node's own offers and needs, from the CLI export beside the running node."""
    offers = await node.cli("export", "offers")
    needs = await node.cli("export", "needs")
    return offers.count("\n") + needs.count("\n") - 2


async def test_import_200_rows_with_3_bad_then_export_and_reimport(browser, nodes, tmp_path):
    a = await nodes.start("a")
    page = await browser.new_page(PHONE)
    assert a.setup_link, a.output()
    await create_account(page, a.setup_link, "Ana")

    await page.goto(a.url + "/import")
    await check(page, "import", budget=False)

    # The preview: exactly the 3 bad rows, by number, in words; nothing posted yet.
    await upload(page, a.url, "sheet.csv", big_sheet())
    errors = page.locator("p.error[id^=row-]")
    await expect(errors).to_have_count(3)
    for number, (_column, _value, words) in BAD_ROWS.items():
        text = await page.locator(f"#row-{number}-error").inner_text()
        assert text.startswith(f"Row {number}, ") and words in text, text
    await expect(page.locator("#import-summary")).to_contain_text("197 rows will be posted")
    assert await posted_count(a) == 0
    await check(page, "import-preview", budget=False)
    await shot(page, "import-preview-top", full_page=False)  # the first screen of it
    await page.locator("#row-14-error").scroll_into_view_if_needed()
    await shot(page, "import-preview-row-14", full_page=False)

    # Confirmed: the 197 good rows are posted, from the same upload (no re-upload).
    async with page.expect_navigation():
        await page.get_by_role("button", name="Post 197 rows").first.click()
    await expect(page.locator(".notice")).to_contain_text("197 posted")
    assert await posted_count(a) == 197

    # The export page; the offers' file, downloaded and imported again, posts nothing.
    await page.goto(a.url + "/export")
    await check(page, "export", budget=False)
    async with page.expect_download() as info:
        await page.locator('form[action="/export/offers.csv"] button[type=submit]').click()
    download = await info.value
    saved = tmp_path / "offers.csv"
    await download.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,kind,title,")
    await upload(page, a.url, "offers.csv", data)
    await expect(page.locator("#import-summary")).to_contain_text("0 rows will be posted")
    await expect(page.locator("#import-summary")).to_contain_text("149 already posted")
    await expect(page.locator("p.error")).to_have_count(0)
    await expect(page.get_by_role("button", name="Post")).to_have_count(0)
    assert await posted_count(a) == 197
