"""Spreadsheets in and out: the services on real data dirs, the `aidmesh import` and
`aidmesh export` commands in a subprocess, and the import and export pages over HTTP on a
real node. The same file in a browser is tests/test_web_sheets_browser.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from conftest import OFFER, make_log
from sheet_helpers import BAD_ROWS, big_sheet
from web_helpers import WebClient, add_person

from node.services import areas, claims, csv_columns, csv_export, csv_import, csv_read
from node.services.errors import Invalid
from node.store.ledger import now_ms

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "sample-offers.csv"
NONE = csv_import.Options()


def plan(home, data: bytes, options: csv_import.Options = NONE) -> csv_import.Preview:
    ledger = home.ledger()
    try:
        return ledger.transaction(lambda c: csv_import.preview(c, ledger, data, options,
                                                                now_ms()))
    finally:
        ledger.close()


def commit(home, data: bytes, options: csv_import.Options = NONE) -> csv_import.Preview:
    ledger = home.ledger()
    try:
        return ledger.transaction(lambda c: csv_import.commit(ledger, c, data, options,
                                                               now_ms()))
    finally:
        ledger.close()


def export(home, what: str, **kw) -> bytes:
    ledger = home.ledger()
    try:
        return csv_export.export(ledger.conn, ledger, what, now_ms(), **kw)
    finally:
        ledger.close()


def actions(preview: csv_import.Preview) -> dict[int, str]:
    return {r.number: r.action for r in preview.rows}


# -- reading sheets as people write them ----------------------------------------------------------


def test_spanish_headers_semicolons_latin1_decimal_comma_and_dates(node_home):
    ledger = node_home.ledger()
    try:
        ledger.transaction(lambda c: areas.add(c, "Northside", 40.425, -3.70, now_ms()))
    finally:
        ledger.close()
    data = ("Título;Categoría;Cantidad;Hasta;Zona;Tipo;Etiquetas;Urgencia\n"
            "Pan del día;Pan y bollería;20 barras;23/11/2030 18:00;northside;oferta;"
            "vegano, sin nueces;\n"
            "Leche infantil;food/baby;2,5 kg;2030-11-23;;necesidad;;alta\n").encode("latin-1")
    preview = plan(node_home, data)
    assert (preview.delimiter, preview.encoding) == (";", "windows-1252")
    assert preview.mapping.fields == ["title", "category", "quantity", "until", "area",
                                      "kind", "tags", "urgency"]
    bread, milk = preview.rows
    assert (bread.number, bread.action, bread.kind) == (2, "post", "offer")
    assert bread.body["category"] == "food/bread"
    assert bread.body["quantity"] == {"value": "20", "unit": "loaf"}
    assert bread.body["area"] == areas.cell_of(40.425, -3.70)
    assert bread.body["tags"] == ["vegano", "sin nueces"]
    assert milk.body["quantity"] == {"value": "2.5", "unit": "kg"}
    assert milk.body["urgency"] == "high" and milk.kind == "need"
    assert bread.body["available_until"].startswith("2030-11-2")  # the node's own zone


def test_dates_and_numbers_people_write():
    zone = csv_read.datetime.now().astimezone().tzinfo
    at = csv_read.moment
    assert at("2026-11-23T18:00:00Z", end_of_day=True, zone=None) == 1795456800000
    utc = csv_read.datetime(2026, 11, 23, 18, 0).replace(tzinfo=zone).timestamp() * 1000
    for text in ("23/11/2026 18:00", "2026-11-23 18:00", "23.11.2026 6:00 pm",
                 "11/23/2026 18:00"):
        assert at(text, end_of_day=True, zone=zone) == utc, text
    assert at("31/02/2026", end_of_day=True, zone=zone) is None
    assert [csv_read.number(t) for t in ("20", "2,5", "1.25", "0", "x", "1e3")] == \
        ["20", "2.5", "1.25", None, None, "1000"]


def test_preview_writes_nothing_and_names_each_bad_row_in_words(node_home):
    before = node_home.snapshot()
    preview = plan(node_home, big_sheet())
    assert node_home.snapshot() == before
    bad = {r.number: r for r in preview.rows if r.action == "error"}
    assert set(bad) == set(BAD_ROWS)
    for number, (column, _value, _words) in BAD_ROWS.items():
        assert [e.field for e in bad[number].errors] == [column]
    assert "did you mean 'food/bread'" in bad[77].errors[0].detail  # the service's check
    assert preview.count("post") == 197 and preview.ready == 197


def test_the_services_checks_apply_without_appending(node_home):
    data = ("title,category,quantity,until,kind\n"
            "Old bread,food/bread,3,01/01/2020,offer\n"
            f"{'x' * 201},food/bread,3,,offer\n"
            "Spoons,goods,4 spoonz,,offer\n"
            ",food/bread,1,,offer\n"
            "Soup,food/meals,1,,\n"
            "Soup,food/meals,1,,need\n"
            "Soup,food/meals,1,,need\n").encode()
    before = node_home.snapshot()
    rows = {r.number: r for r in plan(node_home, data).rows}
    assert node_home.snapshot() == before
    codes = {n: [(e.field, e.code) for e in r.errors] for n, r in rows.items()}
    assert codes == {2: [("until", "in-the-past")], 3: [("title", "payload-schema")],
                     4: [("unit", "unknown-unit")], 5: [("title", "no-title")],
                     6: [("kind", "no-kind")], 7: [], 8: [("key", "duplicate-row")]}
    assert "the same as row 7" in rows[8].errors[0].detail


def test_limits_are_clear_errors(node_home):
    for data, code in ((b"title\n" + b"x" * csv_read.MAX_BYTES, "file-too-big"),
                       (b"title,kind\n" + b"a,offer\n" * (csv_read.MAX_ROWS + 1),
                        "too-many-rows"),
                       (b" \n\n", "empty-file"), (b"PK\x03\x04\x00\x00zip", "not-csv")):
        with pytest.raises(Invalid) as caught:
            plan(node_home, data)
        assert (caught.value.code, caught.value.field) == (code, "file")


def test_an_unknown_column_can_be_chosen(node_home):
    data = "Artículo ofrecido,category,kind\nMilk,food/pantry,offer\n".encode()
    preview = plan(node_home, data)
    assert preview.mapping.unknown == [0] and preview.rows == []
    assert [p.code for p in preview.mapping.problems] == ["no-title-column"]
    chosen = csv_columns.guess(preview.headers, {0: "title"})
    assert chosen.problems == [] and chosen.fields[0] == "title"
    preview = plan(node_home, data, csv_import.Options(chosen={0: "title"}))
    assert actions(preview) == {2: "post"} and preview.rows[0].body["title"] == "Milk"


# -- re-imports never duplicate -------------------------------------------------------------------


def test_reimport_posts_nothing_and_a_keyed_change_updates_its_post(node_home):
    data = SAMPLE.read_bytes()
    done = commit(node_home, data)
    assert done.count("post") == 7 and done.count("error") == 0  # the sample is clean
    count = node_home.entry_count()
    assert set(actions(commit(node_home, data)).values()) == {"same"}
    assert node_home.entry_count() == count
    changed = data.replace(b"Fresh bread,Bread and baked goods,20 loaves",
                           b"Fresh bread,Bread and baked goods,25 loaves")
    again = commit(node_home, changed)
    assert actions(again)[2] == "update" and again.rows[0].changes == ["quantity"]
    assert node_home.entry_count() == count + 1  # one update entry, no new post
    bread = node_home.query("SELECT quantity FROM listings WHERE id = ?",
                            (again.rows[0].target,))
    assert bread == [("25",)]


def test_without_a_key_column_a_changed_row_is_a_new_row(node_home):
    data = b"title,category,kind\nMilk,food/pantry,offer\n"
    first = commit(node_home, data).rows[0].target
    assert actions(commit(node_home, data)) == {2: "same"}
    second = commit(node_home, data.replace(b"Milk", b"Oat milk")).rows[0]
    assert second.action == "post" and second.target != first


def test_a_withdrawn_post_is_not_brought_back(node_home):
    data = b"key,title,category,kind\nm1,Milk,food/pantry,offer\n"
    target = commit(node_home, data).rows[0].target
    ledger = node_home.ledger()
    try:
        ledger.transaction(lambda c: csv_import.listings.withdraw(ledger, c, "offer", target))
    finally:
        ledger.close()
    count = node_home.entry_count()
    row = commit(node_home, data.replace(b"Milk", b"More milk")).rows[0]
    assert (row.action, row.target) == ("skip", target) and "withdrawn" in row.note
    assert node_home.entry_count() == count


def test_the_export_reimports_with_no_duplicates_and_an_edit_updates(node_home):
    commit(node_home, big_sheet(60, bad={}))
    count = node_home.entry_count()
    for what in ("offers", "needs"):
        data = export(node_home, what, bom=True, delimiter=";")
        assert data.startswith(b"\xef\xbb\xbfid;kind;title;category;quantity;unit;")
        preview = commit(node_home, data)
        assert preview.count("same") == (45 if what == "offers" else 15)
        assert preview.count("post") == preview.count("error") == 0
    assert node_home.entry_count() == count
    edited = export(node_home, "offers").replace("Artículo 001".encode(), b"Loaf 001")
    assert commit(node_home, edited).count("update") == 1
    assert node_home.entry_count() == count + 1


def test_export_is_plain_for_spreadsheets_and_keeps_formulas_text(node_home):
    ledger = node_home.ledger()
    try:
        ledger.transaction(lambda c: csv_import.listings.post(ledger, c, "offer", {
            **OFFER, "title": "=HYPERLINK(\"http://x\")", "available_until":
            "2030-01-02T03:04:05Z", "quantity": {"value": 2.5, "unit": "kg"}}))
    finally:
        ledger.close()
    text = export(node_home, "offers").decode("utf-8")
    header, row = text.splitlines()[:2]
    assert header.startswith("id,kind,title,category,quantity,unit,action,available_from,"
                             "available_until,area")
    assert ",2.5,kg," in row and "2030-01-02T03:04:05Z" in row
    assert "'=HYPERLINK" in row
    back = plan(node_home, text.encode())
    assert actions(back) == {2: "same"}


def test_claims_and_handovers_export(node_home, make_home):
    other = make_home("other")
    offer = make_log(other.identity, [("offer", {"title": "Pears", "category": "food/produce",
                                                 "action": "transfer", "quantity": {
                                                     "value": "10", "unit": "kg"}})])
    node_home.ingest(offer)
    offer_id = offer[0].id.hex()
    ledger = node_home.ledger()
    try:
        claim = ledger.transaction(lambda c: claims.make_claim(
            ledger, c, "offer", offer_id, claims.claim_body({"quantity": 4}), now_ms()))
        accept = make_log(other.identity, [("accept", {
            "target": offer[0].id, "claim": claim.id, "claim_author": node_home.identity.public,
            "quantity": {"value": "4", "unit": "kg"}})], previous=offer[-1])
        node_home.ingest(accept)
        ledger.transaction(lambda c: claims.respond(ledger, c, "fulfil", claim.id.hex(), {},
                                                    now_ms()))
    finally:
        ledger.close()
    theirs = plan(node_home, export(node_home, "offers", scope="all"))
    assert [(r.action, r.note) for r in theirs.rows] == [
        ("skip", "another group's post; not imported")]
    rows = export(node_home, "claims").decode().splitlines()
    assert len(rows) == 2 and rows[1].startswith(f"{claim.id.hex()},outgoing,fulfilled,"
                                                 f"{offer_id},offer,Pears,4,kg,4,kg,")
    handovers = export(node_home, "handovers").decode().splitlines()
    assert handovers[0] == ("claim_id,listing_id,listing_kind,listing_title,quantity,unit,"
                            "recorded_by,recorded_by_group,at")
    assert handovers[1].startswith(f"{claim.id.hex()},{offer_id},offer,Pears,4,kg,"
                                   f"{node_home.identity.node_id},")


# -- the commands, as an operator runs them -------------------------------------------------------


def aidmesh(home, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", "--home", str(home.path), *args],
                          cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_previews_then_posts_with_yes_and_the_export_reimports(node_home, tmp_path):
    count = node_home.entry_count()
    shown = aidmesh(node_home, "import", str(SAMPLE))
    assert shown.returncode == 0, shown.stderr
    assert "row 2     post" in shown.stdout and "run again with --yes" in shown.stdout
    assert node_home.entry_count() == count  # not confirmed: nothing posted
    done = aidmesh(node_home, "import", str(SAMPLE), "--yes")
    assert done.returncode == 0 and "7 posted" in done.stdout
    out = tmp_path / "offers.csv"
    wrote = aidmesh(node_home, "export", "offers", "--bom", "-o", str(out))
    assert wrote.returncode == 0 and out.read_bytes().startswith(b"\xef\xbb\xbfid,kind,")
    count = node_home.entry_count()
    again = aidmesh(node_home, "import", str(out), "--yes")
    assert "0 to post, 0 to update, 4 already posted" in again.stdout
    assert node_home.entry_count() == count
    assert aidmesh(node_home, "export", "needs").stdout.count("\n") == 4
    assert aidmesh(node_home, "export").stdout.startswith("{")  # alone: JSON lines


def test_cli_refusals_are_one_line(node_home, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Producto,categoría\nMilk,food/pantry\n")
    for args, words in ((["import", str(bad)], "no column is read as the title"),
                        (["import", str(tmp_path / "missing.csv")], "No such file"),
                        (["import", str(bad), "--map", "Producto=price"], "--map takes")):
        result = aidmesh(node_home, *args)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("aidmesh: error: ") and words in result.stderr
    mapped = aidmesh(node_home, "import", str(bad), "--map", "Producto=title", "--kind",
                     "offer", "--json")
    assert '"action": "post"' in mapped.stdout


# -- the pages ------------------------------------------------------------------------------------


async def upload(client: WebClient, data: bytes, **fields: str):
    page = await client.get("/import")
    form = aiohttp.FormData()
    form.add_field("csrf", page.csrf)
    for key, value in fields.items():
        form.add_field(key, value)
    form.add_field("file", data, filename="sheet.csv", content_type="text/csv")
    async with client.session.post(client.base + "/import", data=form,
                                   allow_redirects=False) as r:
        return await client._page(r)


def carried(page) -> str:
    return re.search(r'name="data" value="([^"]*)"', page.text).group(1)


async def test_import_page_previews_then_posts_and_reimports_nothing(node):
    add_person(node.home, "coordinator", "Cora")
    client = WebClient(node.url)
    try:
        await client.sign_in("Cora")
        count = node.home.entry_count()
        page = await upload(client, big_sheet())
        assert page.status == 200 and node.home.entry_count() == count
        errors = page.errors()
        assert set(errors) == {f"row-{n}" for n in BAD_ROWS}
        for number, (_column, _value, words) in BAD_ROWS.items():
            assert errors[f"row-{number}"].startswith(f"Row {number}, ")
            assert words in errors[f"row-{number}"]
        assert "Post 197 rows" in page.text
        posted = await client.post("/import", {"data": carried(page), "do": "post"},
                                   csrf=page.csrf)
        assert (posted.status, posted.location) == (303, "/import?posted=197&updated=0")
        assert node.home.entry_count() >= count + 197
        assert len(node.home.query("SELECT key FROM import_rows")) == 197
        again = await client.post("/import", {"data": carried(page), "do": "post"},
                                  csrf=page.csrf)
        assert again.location == "/import?posted=0&updated=0"
        exported = await client.session.get(client.base + "/export/offers.csv?bom=1")
        assert exported.status == 200 and exported.content_type == "text/csv"
        assert "attachment" in exported.headers["Content-Disposition"]
        count = node.home.entry_count()
        page = await upload(client, await exported.read())
        assert "0 rows will be posted" in page.text and page.errors() == {}
        assert node.home.entry_count() == count
    finally:
        await client.close()


async def test_import_page_refusals_change_nothing(node):
    add_person(node.home, "coordinator", "Cora")
    add_person(node.home, "reader", "Rita")
    client, reader = WebClient(node.url), WebClient(node.url)
    try:
        await client.sign_in("Cora")
        await reader.sign_in("Rita")
        before = node.home.snapshot()
        empty = await client.post("/import", {"do": "preview"}, form_page="/import")
        assert empty.status == 422 and "Choose a CSV file" in empty.errors()["file"]
        big = await upload(client, b"title\n" + b"x" * (csv_read.MAX_BYTES + 10))
        assert big.status == 422 and "KiB" in big.errors()["file"]
        garbage = await client.post("/import", {"data": "%%%", "do": "post"},
                                    form_page="/import")
        assert garbage.status == 422
        unknown = await upload(client, "Qué hay,kind\nMilk,offer\n".encode())
        assert unknown.status == 422 and "No column holds the title" in unknown.text
        forged = await client.post("/import", {"data": "dGl0bGUK", "do": "post"}, csrf="")
        assert forged.status == 403
        assert (await reader.get("/import")).status == 403
        assert (await reader.get("/export")).status == 200
        bad = await reader.get("/export/offers.csv?delimiter=tab")
        assert bad.status == 400 and "comma or a semicolon" in bad.text
        assert node.home.snapshot() == before
    finally:
        await client.close()
        await reader.close()


async def test_a_column_chosen_on_the_page_is_read(node):
    add_person(node.home, "coordinator", "Cora")
    client = WebClient(node.url)
    try:
        await client.sign_in("Cora")
        page = await upload(client, "Qué hay,kind,category\nMilk,offer,food/pantry\n".encode())
        assert 'id="f-map-0"' in page.text
        fixed = await client.post("/import", {"data": carried(page), "do": "preview",
                                              "map-0": "title", "map-1": "kind",
                                              "map-2": "category"}, csrf=page.csrf)
        assert fixed.status == 200 and "Post 1 row" in fixed.text
        done = await client.post("/import", {"data": carried(page), "do": "post",
                                             "map-0": "title", "map-1": "kind",
                                             "map-2": "category"}, csrf=page.csrf)
        assert done.location == "/import?posted=1&updated=0"
        assert node.home.query("SELECT title FROM listings") == [("Milk",)]
    finally:
        await client.close()


async def test_an_upload_over_the_body_limit_is_refused_not_a_crash(node):
    add_person(node.home, "coordinator", "Cora")
    client = WebClient(node.url)
    try:
        await client.sign_in("Cora")
        before = node.home.snapshot()
        page = await upload(client, b"title\n" + b"x" * (2 * 1024 * 1024))
        assert page.status == 413
        assert node.home.snapshot() == before
    finally:
        await client.close()
