"""The web app over plain HTTP: sign-in, roles, CSRF, headers, forms that keep what was
typed. Real nodes on 127.0.0.1 and real data dirs; the browser flows are in
tests/test_web_browser.py."""

from __future__ import annotations

import hashlib
import re

import pytest
from conftest import expect_problem
from web_helpers import PASSWORD, WebClient, add_person

from node.services import people
from node.store.ledger import now_ms
from node.web.views import CSP
from protocol import Entry, decode_header
from protocol.identity import sha256

PAGES = ["/", "/browse", "/post/offer", "/post/need", "/claims", "/account", "/people",
         "/areas"]


@pytest.fixture
async def clients():
    made: list[WebClient] = []

    def make(base: str, language: str = "en") -> WebClient:
        made.append(WebClient(base, language))
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def signed_in(node, clients, role: str, name: str, language: str = "en") -> WebClient:
    add_person(node.home, role, name)
    client = clients(node.url, language)
    await client.sign_in(name)
    return client


def everyone(node) -> list[tuple]:
    return node.home.query("SELECT id, name, role, revoked FROM people ORDER BY id")


async def test_setup_link_makes_the_first_admin_once(node, clients):
    ledger = node.home.ledger()
    try:
        token = ledger.transaction(lambda c: people.setup_token(c, now_ms()))
    finally:
        ledger.close()
    browser = clients(node.url)
    page = await browser.get(f"/join/{token}")
    assert page.status == 200 and "first admin" in page.text
    page = await browser.post(f"/join/{token}", {"name": "Ana", "password": PASSWORD,
                                                 "password2": PASSWORD})
    assert page.status == 303 and page.location == "/"
    home = await browser.get("/")
    assert home.status == 200 and 'href="/people"' in home.text  # an admin's navigation
    before = everyone(node)
    other = clients(node.url)
    again = await other.post(f"/join/{token}", {"name": "Eve", "password": PASSWORD,
                                                "password2": PASSWORD}, form_page="/signin")
    assert again.status == 404 and "Ask your admin for a new one" in again.text
    assert everyone(node) == before


async def test_join_form_errors_stay_next_to_the_field(node, clients):
    add_person(node.home, "admin", "Ana")
    ledger = node.home.ledger()
    try:
        token = ledger.transaction(lambda c: people.create_invite(
            c, "coordinator", None, now_ms()))
    finally:
        ledger.close()
    browser = clients(node.url)
    page = await browser.post(f"/join/{token}", {"name": "Bo", "password": "short",
                                                 "password2": "short"})
    assert page.status == 422
    assert "password" in page.errors() and page.values()["name"] == "Bo"
    page = await browser.post(f"/join/{token}", {"name": "Bo", "password": PASSWORD,
                                                 "password2": PASSWORD + "x"})
    assert page.status == 422 and "password2" in page.errors()
    page = await browser.post(f"/join/{token}", {"name": "ana", "password": PASSWORD,
                                                 "password2": PASSWORD})
    assert page.status == 422 and "name" in page.errors()  # taken, whatever the case
    assert [p[1] for p in everyone(node)] == ["Ana"]


async def test_pages_need_a_session(node, clients):
    browser = clients(node.url)
    for path in PAGES:
        page = await browser.get(path)
        assert page.status == 303, path
        assert page.location.startswith("/signin?next="), path
    # A token is for the API, not for pages: it does not open them.
    r = await node.get("/", role="admin")
    assert r.status == 200 and "Sign in" in await r.text()


async def test_every_page_sends_strict_headers_and_no_inline_code(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    for path in [*PAGES, "/signin", "/no-such-page"]:
        page = await admin.get(path)
        assert page.status in (200, 303, 404), path
        assert page.headers["Content-Security-Policy"] == CSP
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), path
        assert not re.search(r"\son[a-z]+=", page.text), path
        assert ' style="' not in page.text, path
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP


async def test_session_cookie_is_httponly_and_samesite(node, clients):
    add_person(node.home, "coordinator", "Cleo")
    r = await node.client.post("/signin", data={
        "name": "Cleo", "password": PASSWORD,
        "csrf": (await WebClient(node.url).get("/signin")).csrf}, allow_redirects=False)
    # No CSRF cookie came with that token: refused before the password is looked at.
    assert r.status == 403
    browser = clients(node.url)
    page = await browser.post("/signin", {"name": "Cleo", "password": PASSWORD})
    cookie = page.headers["Set-Cookie"]
    assert "aidmesh_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_post_without_or_with_a_wrong_csrf_token_changes_nothing(node, clients):
    coordinator = await signed_in(node, clients, "coordinator", "Cleo")
    form = {"title": "Soup", "category": "Cooked meals", "until": ""}
    before = node.home.snapshot()
    page = await coordinator.post("/post/offer", form, csrf="")
    assert page.status == 403 and "expired" in page.text
    page = await coordinator.post("/post/offer", form, csrf="x" * 43)
    assert page.status == 403
    assert node.home.snapshot() == before
    page = await coordinator.post("/post/offer", form)
    assert page.status == 303 and page.location.startswith("/offers/")
    assert node.home.entry_count() == before["entries"] + 1


async def test_a_reader_sees_no_controls_and_a_forged_post_is_refused(node, clients):
    offer = await node.create("offer")
    reader = await signed_in(node, clients, "reader", "Rui")
    item = await reader.get(f"/offers/{offer['id']}")
    assert item.status == 200 and offer["title"] in item.text
    assert "/withdraw" not in item.text and "/erase" not in item.text
    home = await reader.get("/")
    assert 'href="/post/offer"' not in home.text
    assert (await reader.get("/post/offer")).status == 403
    before = node.home.snapshot()
    csrf = home.csrf  # the reader's own valid token: the role is what refuses it
    for path, form in [("/post/offer", {"title": "x", "category": "Cooked meals"}),
                       (f"/offers/{offer['id']}/withdraw", {}),
                       (f"/offers/{offer['id']}/erase", {}),
                       ("/people/invite", {"role": "admin"})]:
        page = await reader.post(path, form, csrf=csrf)
        assert page.status == 403, path
    assert node.home.snapshot() == before


async def test_bad_input_is_shown_next_to_the_field_and_kept(node, clients):
    coordinator = await signed_in(node, clients, "coordinator", "Cleo")
    before = node.home.snapshot()
    page = await coordinator.post("/post/need", {
        "title": "", "category": "flying cars", "quantity": "lots", "unit": "each",
        "until": "tomorrow", "tags": "one, two"})
    assert page.status == 422
    errors = page.errors()
    assert set(errors) == {"title", "category", "quantity", "until"}, errors
    values = page.values()
    assert values["category"] == "flying cars" and values["quantity"] == "lots"
    assert values["tags"] == "one, two"
    page = await coordinator.post("/post/need", {
        "title": "Formula", "category": "Baby food and formula", "until": "2001-01-01T10:00"})
    assert page.status == 422 and "until" in page.errors()  # in the past: the service says
    assert page.values()["title"] == "Formula"
    assert node.home.snapshot() == before


async def test_a_post_records_who_made_it(node, clients):
    coordinator = await signed_in(node, clients, "coordinator", "Cleo")
    page = await coordinator.post("/post/offer", {
        "title": "Bread", "category": "Bread and baked goods", "quantity": "20",
        "unit": "loaf"})
    item = await coordinator.get(page.location)
    assert "Posted by" in item.text and "Cleo" in item.text
    reader = await signed_in(node, clients, "reader", "Rui")
    assert "Cleo" not in (await reader.get(page.location)).text


async def test_sign_in_failures_look_alike_and_are_limited(node, clients):
    add_person(node.home, "coordinator", "Cleo")
    browser = clients(node.url)
    wrong = await browser.post("/signin", {"name": "Cleo", "password": "not it at all"})
    unknown = await browser.post("/signin", {"name": "Nobody", "password": "not it at all"})
    assert wrong.status == unknown.status == 401
    assert wrong.errors() == unknown.errors() and wrong.errors()["password"]
    assert wrong.values()["name"] == "Cleo"
    for _ in range(4):
        page = await browser.post("/signin", {"name": "Cleo", "password": "nope nope nope"})
    assert page.status == 401
    page = await browser.post("/signin", {"name": "Cleo", "password": PASSWORD})
    assert page.status == 429 and int(page.headers["Retry-After"]) > 0
    assert "session" not in page.headers.get("Set-Cookie", "")


async def test_sign_in_goes_back_only_to_this_node(node, clients):
    add_person(node.home, "coordinator", "Cleo")
    browser = clients(node.url)
    form = await browser.get("/signin?next=//evil.example/")
    page = await browser.post("/signin", {"name": "Cleo", "password": PASSWORD,
                                          "next": "//evil.example/"}, csrf=form.csrf)
    assert page.status == 303 and page.location == "/"
    page = await browser.get("/browse?q=x")
    assert page.status == 200


async def test_ending_a_session_elsewhere_signs_that_browser_out(node, clients):
    phone = await signed_in(node, clients, "coordinator", "Cleo")
    laptop = clients(node.url)
    await laptop.sign_in("Cleo")
    account = await phone.get("/account")
    ids = re.findall(r'/account/sessions/([0-9a-f]+)/end', account.text)
    assert len(ids) == 2
    current = people_session_id(node, phone)
    other = next(i for i in ids if i != current)
    page = await phone.post(f"/account/sessions/{other}/end", {})
    assert page.status == 303
    assert (await laptop.get("/")).status == 303  # back to sign in
    assert (await phone.get("/")).status == 200


def people_session_id(node, client: WebClient) -> str:
    token = next(c.value for c in client.session.cookie_jar if c.key == "aidmesh_session")
    rows = node.home.query("SELECT id FROM sessions WHERE hash = ?",
                           (hashlib.sha256(token.encode()).digest(),))
    return rows[0][0]


async def test_a_revoked_person_is_signed_out_at_once(node, clients):
    admin_person = add_person(node.home, "admin", "Ana")
    coordinator = await signed_in(node, clients, "coordinator", "Cleo")
    assert (await coordinator.get("/")).status == 200
    cleo = next(p for p in everyone(node) if p[1] == "Cleo")
    ledger = node.home.ledger()
    try:
        ledger.transaction(lambda c: people.revoke_person(c, admin_person, cleo[0]))
    finally:
        ledger.close()
    assert (await coordinator.get("/")).status == 303


async def test_language_from_the_browser_then_the_persons_choice(node, clients):
    add_person(node.home, "coordinator", "Cleo")
    browser = clients(node.url, language="es-MX,es;q=0.9,en;q=0.5")
    page = await browser.get("/signin")
    assert '<html lang="es"' in page.text and "Iniciar sesión" in page.text
    await browser.sign_in("Cleo")
    page = await browser.post("/language", {"lang": "en", "next": "/browse"}, form_page="/")
    assert page.status == 303 and page.location == "/browse"
    again = clients(node.url, language="es")  # another browser, same person
    await again.sign_in("Cleo")
    assert '<html lang="en"' in (await again.get("/")).text


async def test_unknown_pages_are_html_and_the_api_keeps_problem_json(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    page = await admin.get("/no/such/page")
    assert page.status == 404 and "<html" in page.text
    await expect_problem(await node.get("/api/v1/no-such"), 404, "not-found")
    page = await admin.get("/offers/" + "0" * 64)
    assert page.status == 404 and "<html" in page.text


async def test_edit_withdraw_and_erase_own_posts(node, clients):
    coordinator = await signed_in(node, clients, "coordinator", "Cleo")
    page = await coordinator.post("/post/offer", {
        "title": "Bread", "category": "Bread and baked goods", "quantity": "20",
        "unit": "loaf", "until": "2030-01-01T18:00"})
    item = page.location.split("?")[0]
    form = await coordinator.get(item + "/edit")
    assert form.status == 200 and form.values()["title"] == "Bread"
    assert form.values()["quantity"] == "20"
    page = await coordinator.post(item + "/edit", {**form.values(), "quantity": "x"},
                                  csrf=form.csrf)
    assert page.status == 422 and "quantity" in page.errors()
    page = await coordinator.post(item + "/edit", {**form.values(), "quantity": "15",
                                                   "unit": "loaf"}, csrf=form.csrf)
    assert page.status == 303
    shown = await coordinator.get(item)
    assert "15 loaves" in shown.text
    page = await coordinator.post(item + "/withdraw", {}, form_page=item)
    assert page.status == 303 and "withdrawn" in (await coordinator.get(item)).text
    page = await coordinator.post(item + "/erase", {}, form_page=item)
    assert page.status == 303 and page.location == "/?done=erased"
    assert (await coordinator.get(item)).status == 404
    listing_id = item.rsplit("/", 1)[1]
    await expect_problem(await node.get(f"/api/v1/offers/{listing_id}"), 404, "not-found")


async def test_another_groups_post_cannot_be_changed_here(make_node, clients):
    a = await make_node("a")
    offer = await a.create("offer")
    b = await make_node("b")
    b.home.ingest(_log_of(a))
    coordinator = await signed_in(b, clients, "coordinator", "Cleo")
    item = f"/offers/{offer['id']}"
    page = await coordinator.get(item)
    assert page.status == 200 and "/edit" not in page.text and "/erase" not in page.text
    assert (await coordinator.get(item + "/edit")).status == 404
    before = b.home.snapshot()
    page = await coordinator.post(item + "/withdraw", {}, csrf=page.csrf)
    assert page.status == 409 and "class=\"error\"" in page.text
    assert b.home.snapshot() == before


def _log_of(node) -> list[Entry]:
    rows = node.home.query("SELECT raw, payload FROM entries WHERE author = ? ORDER BY seq",
                           (node.home.identity.public,))
    return [Entry(decode_header(r[0]).header, r[0], sha256(r[0]), r[1]) for r in rows]


async def test_an_invite_link_says_how_to_use_its_code(node, clients):
    browser = clients(node.url)
    page = await browser.get("/peer-invite?code=amiabc")
    assert page.status == 200 and 'value="amiabc"' in page.text and "Peers" in page.text
    page = await browser.get("/peer-invite?code=%22%3E%3Cscript%3E")
    assert page.status == 200 and "<script>" not in page.text  # escaped, never markup
