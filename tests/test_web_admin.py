"""The admin pages over plain HTTP: only admins, and each action does what it says and
refuses bad input with the message next to the field and nothing changed. Real nodes on
127.0.0.1 and real data dirs; the browser flows are in tests/test_web_admin_browser.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest
from aiohttp import web
from conftest import make_log
from federation_helpers import wait_until
from web_helpers import WebClient, add_person

from node.runtime import NODE
from node.services import settings
from protocol import Identity, decode

ADMIN_PAGES = ["/admin", "/admin/node", "/admin/peers", "/admin/coalition", "/admin/tokens",
               "/admin/moderation", "/admin/webhooks", "/admin/settings", "/people"]
ADMIN_POSTS = ["/admin/peers/invite", "/admin/peers/join", "/admin/tokens",
               "/admin/moderation", "/admin/moderation/block", "/admin/webhooks",
               "/admin/settings", "/people/x/role", "/people/x/revoke"]
SETTINGS = {"name": "Northside Pantry", "about": "Food for all, Tuesdays.",
            "languages": "es, EN", "categories": "food/soup\nfood/soup/cold",
            "units": "pallet, crate-small", "retention_days": "12"}


@pytest.fixture
async def clients():
    made: list[WebClient] = []

    def make(base: str) -> WebClient:
        made.append(WebClient(base))
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def signed_in(node, clients, role: str, name: str) -> WebClient:
    add_person(node.home, role, name)
    client = clients(node.url)
    await client.sign_in(name)
    return client


def profiles(node) -> list[dict]:
    rows = node.home.query("SELECT payload FROM entries WHERE author = ? AND kind = "
                           "'profile' ORDER BY seq", (node.home.identity.public,))
    return [decode(r[0]) for r in rows]


def trusted(node) -> list[str]:
    return ["am" + r[0].hex() for r in node.home.query(
        "SELECT peer FROM trust_edges WHERE author = ? AND active = 1",
        (node.home.identity.public,))]


async def test_admin_pages_are_for_admins_only(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    for path in ADMIN_PAGES:
        page = await admin.get(path)
        assert page.status == 200, path
        assert 'href="/admin" aria-current="page"' in page.text or path == "/people", path
    coordinator = await signed_in(node, clients, "coordinator", "Bo")
    csrf = (await coordinator.get("/account")).csrf
    before = node.home.snapshot()
    for path in ADMIN_PAGES:
        assert (await coordinator.get(path)).status == 403, path
    for path in ADMIN_POSTS:
        page = await coordinator.post(path, {"name": "x", "role": "admin"}, csrf=csrf)
        assert page.status == 403 and "cannot do this" in page.text, path
    visitor = clients(node.url)
    page = await visitor.get("/admin/peers")
    assert page.status == 303 and page.location.startswith("/signin?next=")
    assert node.home.snapshot() == before
    home = await admin.get("/")
    assert 'href="/admin"' in home.text
    assert 'href="/admin"' not in (await coordinator.get("/")).text


async def test_settings_are_kept_applied_and_published(make_node, clients):
    node = await make_node()
    admin = await signed_in(node, clients, "admin", "Ana")
    page = await admin.post("/admin/settings", SETTINGS)
    assert page.status == 303 and page.location == "/admin/settings?done=1"
    latest = profiles(node)[-1]
    assert latest["name"] == "Northside Pantry" and latest["about"] == SETTINGS["about"]
    assert latest["languages"] == ["es", "en"]
    assert latest["categories"] == ["food/soup", "food/soup/cold"]
    assert latest["units"] == ["pallet", "crate-small"] and len(latest["seal_key"]) == 32
    config = node.app[NODE].config
    assert (config.name, config.retention_days, config.units) == (
        "Northside Pantry", 12, ["pallet", "crate-small"])
    # The vocabulary checks take the group's own category at once.
    offer = await node.post("/api/v1/offers", json={
        "title": "Soup", "action": "transfer", "category": "food/soup/cold",
        "quantity": {"value": "3", "unit": "pallet"}})
    assert offer.status == 201, await offer.text()
    shown = (await admin.get("/admin/settings")).values()
    assert shown["name"] == "Northside Pantry" and shown["retention_days"] == "12"
    # The same settings again append nothing; a restart applies them before serving.
    count = len(profiles(node))
    assert (await admin.post("/admin/settings", SETTINGS)).status == 303
    assert len(profiles(node)) == count
    again = await node.restart()
    assert again.app[NODE].config.name == "Northside Pantry"
    assert again.app[NODE].config.retention_days == 12
    assert len(profiles(again)) == count


@pytest.mark.parametrize("field,value,words", [
    ("name", "", "1 to 100 characters"),
    ("languages", "english!", "not a language code"),
    ("categories", "Food Soup", "not a category like food/soup"),
    ("units", "kg", "already known as 'kg'"),
    ("retention_days", "0", "from 1 to 3650"),
    ("about", "x" * 2001, "at most 2000"),
])
async def test_bad_settings_are_refused_next_to_the_field(node, clients, field, value,
                                                          words):
    admin = await signed_in(node, clients, "admin", "Ana")
    before, saved = node.home.snapshot(), node.home.query(
        "SELECT key, value FROM meta WHERE key LIKE 'setting.%'")
    page = await admin.post("/admin/settings", {**SETTINGS, field: value})
    assert page.status == 422
    assert words in page.errors()[field], page.errors()
    if field not in ("about", "categories"):  # inputs; those two are text areas
        assert page.values()[field] == value  # what was typed stays
    assert node.home.snapshot() == before
    assert node.home.query("SELECT key, value FROM meta WHERE key LIKE 'setting.%'") == saved
    assert node.app[NODE].config.retention_days == 30


async def test_an_admin_changes_roles_and_revokes_at_once(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    bo = await signed_in(node, clients, "coordinator", "Bo")
    assert (await bo.get("/post/offer")).status == 200
    bo_id = node.home.query("SELECT id FROM people WHERE name = 'Bo'")[0][0]
    people = await admin.get("/people")
    assert f'action="/people/{bo_id}/revoke"' in people.text and "Signed in on 1" in people.text
    page = await admin.post(f"/people/{bo_id}/role", {"role": "reader"}, form_page="/people")
    assert page.status == 303 and page.location == "/people?done=role"
    assert (await bo.get("/post/offer")).status == 403  # the next request knows
    page = await admin.post(f"/people/{bo_id}/revoke", {}, form_page="/people")
    assert page.status == 303
    gone = await bo.get("/")
    assert gone.status == 303 and gone.location.startswith("/signin")
    assert node.home.query("SELECT count(*) FROM sessions WHERE person_id = ?",
                           (bo_id,)) == [(0,)]


async def test_the_last_admin_stays_and_bad_role_changes_change_nothing(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    ana_id = node.home.query("SELECT id FROM people WHERE name = 'Ana'")[0][0]
    before = node.home.query("SELECT id, role, revoked FROM people")
    page = await admin.post(f"/people/{ana_id}/role", {"role": "reader"},
                            form_page="/people")
    assert page.status == 409 and "last admin" in page.errors()["people"]
    page = await admin.post(f"/people/{ana_id}/revoke", {}, form_page="/people")
    assert page.status == 409 and "last admin" in page.errors()["people"]
    page = await admin.post(f"/people/{ana_id}/role", {"role": "king"}, form_page="/people")
    assert page.status == 422 and "Pick one of the roles" in page.errors()["people"]
    assert (await admin.post("/people/nobody/revoke", {}, form_page="/people")).status == 404
    assert node.home.query("SELECT id, role, revoked FROM people") == before


async def test_api_tokens_are_shown_once_and_revoked(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    page = await admin.post("/admin/tokens", {"name": "dashboard", "role": "reader"})
    assert page.status == 200
    token = re.search(r'id="new-token" type="text" readonly value="(amt_[^"]+)"',
                      page.text).group(1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await node.get("/api/v1/offers", headers=headers, role=None)).status == 200
    assert token not in (await admin.get("/admin/tokens")).text
    token_id = token.split("_")[1]
    page = await admin.post(f"/admin/tokens/{token_id}/revoke", {}, form_page="/admin/tokens")
    assert page.status == 303
    assert (await node.get("/api/v1/offers", headers=headers, role=None)).status == 401
    before = node.home.snapshot()
    page = await admin.post("/admin/tokens", {"name": "", "role": "reader"})
    assert page.status == 422 and "1 to 100 characters" in page.errors()["name"]
    page = await admin.post("/admin/tokens", {"name": "x", "role": "king"})
    assert page.status == 422 and "role must be one of" in page.errors()["role"]
    assert (await admin.post(f"/admin/tokens/{token_id}/revoke", {},
                             form_page="/admin/tokens")).status == 404
    assert node.home.snapshot() == before


async def test_moderation_hides_blocks_and_undoes(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    offer = await node.create("offer", title="Dubious ladder")
    page = await admin.post("/admin/moderation", {
        "id": f"{node.url}/offers/{offer['id']}", "action": "hide", "hide_reason": "spam"})
    assert page.status == 303
    listed = await admin.get("/admin/moderation")
    assert "Dubious ladder" in listed.text and "spam" in listed.text
    assert "Dubious ladder" not in (await admin.get("/browse")).text
    page = await admin.post("/admin/moderation/undo", {"id": offer["id"]},
                            form_page="/admin/moderation")
    assert page.status == 303 and "Dubious ladder" in (await admin.get("/browse")).text
    other = Identity.generate().node_id
    page = await admin.post("/admin/moderation/block", {"author": other, "reason": "abuse"},
                            form_page="/admin/moderation")
    assert page.status == 303 and other in (await admin.get("/admin/moderation")).text
    assert "abuse" in (await admin.get("/admin/coalition")).text
    page = await admin.post("/admin/moderation/unblock", {"author": other},
                            form_page="/admin/moderation")
    assert page.status == 303 and node.home.query("SELECT * FROM blocks") == []
    before = node.home.snapshot()
    page = await admin.post("/admin/moderation", {"id": "nonsense", "action": "hide"},
                            form_page="/admin/moderation")
    assert page.status == 422 and page.errors()["id"]
    page = await admin.post("/admin/moderation/block", {"author": node.node_id},
                            form_page="/admin/moderation")
    assert page.status == 422 and "cannot block itself" in page.errors()["author"]
    assert node.home.snapshot() == before and node.home.query("SELECT * FROM blocks") == []


async def test_webhooks_add_test_delivery_and_delete(make_node, clients, aiohttp_server):
    got: list[tuple[dict, bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    server = await aiohttp_server(receiver)
    node = await make_node(webhook_allow_local=True)
    admin = await signed_in(node, clients, "admin", "Ana")
    url = str(server.make_url("/hook"))
    page = await admin.post("/admin/webhooks", {"url": url, "types": "listing"})
    assert page.status == 200 and url in page.text
    secret = re.search(r'id="hook-secret" type="text" readonly value="([0-9a-f]+)"',
                       page.text).group(1)
    hook_id = node.home.query("SELECT id FROM webhooks")[0][0]
    page = await admin.post(f"/admin/webhooks/{hook_id}/test", {}, form_page="/admin/webhooks")
    assert page.status == 200 and "The test delivery arrived" in page.text
    headers, body = got[0]
    assert headers["X-Aidmesh-Event-Type"] == "test" and json.loads(body)["type"] == "test"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Aidmesh-Signature"] == f"sha256={expected}"
    await node.create("offer", title="Bread")  # a real delivery, shown as the last one
    await wait_until(lambda: len(got) >= 2, what="the listing event delivered")
    await wait_until(lambda: node.home.query("SELECT last_success FROM webhooks")[0][0],
                     what="the delivery recorded")
    assert "Last delivered" in (await admin.get("/admin/webhooks")).text
    before = node.home.query("SELECT * FROM webhooks")
    page = await admin.post("/admin/webhooks", {"url": "ftp://example.org/x"},
                            form_page="/admin/webhooks")
    assert page.status == 422 and page.errors().get("url"), page.text
    page = await admin.post("/admin/webhooks", {"url": url, "types": "gossip"},
                            form_page="/admin/webhooks")
    assert page.status == 422 and page.errors()["types"]
    await server.close()
    page = await admin.post(f"/admin/webhooks/{hook_id}/test", {}, form_page="/admin/webhooks")
    assert page.status == 502 and "The test delivery failed" in page.errors()["test"]
    assert node.home.query("SELECT * FROM webhooks") == before
    page = await admin.post(f"/admin/webhooks/{hook_id}/delete", {},
                            form_page="/admin/webhooks")
    assert page.status == 303 and node.home.query("SELECT * FROM webhooks") == []
    assert (await admin.post(f"/admin/webhooks/{hook_id}/test", {},
                             form_page="/admin/webhooks")).status == 404


async def test_the_node_page_explains_a_fork(node, clients):
    admin = await signed_in(node, clients, "admin", "Ana")
    page = await admin.get("/admin/node")
    assert node.node_id in page.text and "No forks" in page.text
    assert "nothing: lists are up to date" in page.text  # the projector's lag
    other = Identity.generate()
    first = make_log(other, [("profile", {"name": "Twin group"})])
    node.home.ingest(first + make_log(other, [("profile", {"name": "One"})], first[0]))
    node.home.ingest(make_log(other, [("profile", {"name": "Two"})], first[0]))
    page = await admin.get("/admin/node")
    assert "A fork means" in page.text and "tell that group" in page.text
    assert "at entry 2" in page.text


def own_logs(*nodes) -> list:
    return [(trusted(n), n.home.query("SELECT count(*) FROM entries WHERE author = ?",
                                      (n.home.identity.public,))) for n in nodes]


async def peered_by_code(a, b, clients):
    """A's admin makes a code on the peers page; B's admin pastes it."""
    for n in (a, b):
        n.app[NODE].config.public_url = n.url  # the test server's port is known only now
    admin_a = await signed_in(a, clients, "admin", "Ana")
    admin_b = await signed_in(b, clients, "admin", "Bea")
    page = await admin_a.post("/admin/peers/invite", {})
    code = re.search(r'id="invite-code" type="text" readonly value="([^"]+)"',
                     page.text).group(1)
    page = await admin_b.post("/admin/peers/join", {"code": code}, form_page="/admin/peers")
    assert page.status == 200 and "now trust each other" in page.text, page.errors()
    return admin_a, admin_b, code


async def test_peering_by_code_sync_now_and_remove(make_node, clients):
    a, b = await make_node("a", gossip_interval_s=60.0), await make_node("b")
    admin_a, admin_b, code = await peered_by_code(a, b, clients)
    assert trusted(a) == [b.node_id] and trusted(b) == [a.node_id]
    assert f'id="peer-{b.node_id}"' in (await admin_a.get("/admin/peers")).text
    assert f'id="peer-{a.node_id}"' in (await admin_b.get("/admin/peers")).text
    # The code works once: pasting it again changes nothing and says why.
    before = own_logs(a, b)  # (entries replicate meanwhile: only our own logs must stay)
    page = await admin_b.post("/admin/peers/join", {"code": code}, form_page="/admin/peers")
    assert page.status == 422 and page.errors()["code"]
    page = await admin_b.post("/admin/peers/join", {"code": "ami-not-a-code"},
                              form_page="/admin/peers")
    assert page.status == 422 and "copy it again" in page.errors()["code"]
    assert page.values()["code"] == "ami-not-a-code"
    assert own_logs(a, b) == before
    # Sync now brings B's new offer to A without waiting A's 60 s round.
    offer = await b.create("offer", title="Sync me")
    assert (await admin_a.post(f"/admin/peers/{b.node_id}/sync", {},
                               form_page="/admin/peers")).status == 303
    await wait_until(lambda: a.home.query("SELECT 1 FROM listings WHERE id = ?",
                                          (offer["id"],)), what="the offer at A")
    page = await admin_a.get("/admin/coalition")
    assert "a direct peer" in page.text
    assert (await admin_a.post(f"/admin/peers/am{'0' * 64}/sync", {},
                               form_page="/admin/peers")).status == 404
    page = await admin_a.post(f"/admin/peers/{b.node_id}/remove", {},
                              form_page="/admin/peers")
    assert page.status == 303 and trusted(a) == []


async def test_invite_codes_can_be_cancelled(make_node, clients):
    a = await make_node()
    a.app[NODE].config.public_url = a.url
    admin = await signed_in(a, clients, "admin", "Ana")
    await admin.post("/admin/peers/invite", {})
    page = await admin.get("/admin/peers")
    invite_id = re.search(r'/admin/peers/invites/([0-9a-f]+)/revoke', page.text).group(1)
    page = await admin.post(f"/admin/peers/invites/{invite_id}/revoke", {},
                            form_page="/admin/peers")
    assert page.status == 303
    assert "/admin/peers/invites/" not in (await admin.get("/admin/peers")).text
    assert (await admin.post(f"/admin/peers/invites/{invite_id}/revoke", {},
                             form_page="/admin/peers")).status == 404


def test_settings_parse_keeps_order_and_drops_repeats():
    values = settings.parse({**SETTINGS, "languages": "es es, en;ar", "units": "pallet pallet"})
    assert values["languages"] == ["es", "en", "ar"] and values["units"] == ["pallet"]


async def test_the_coalition_says_through_whom_each_group_comes(make_node, clients):
    a, b, c = [await make_node(n, gossip_interval_s=0.5) for n in "abc"]
    for one, other in ((a, b), (b, a), (b, c), (c, b)):
        await one.json("POST", "/api/v1/peers", 201, json={"id": other.node_id,
                                                           "url": other.url})
    c_name = profiles(c)[-1]["name"]
    await wait_until(lambda: a.home.query("SELECT 1 FROM heads WHERE author = ?",
                                          (c.home.identity.public,)), what="C's log at A")
    admin = await signed_in(a, clients, "admin", "Ana")
    page = await admin.get("/admin/coalition")
    assert "a direct peer" in page.text and "2 steps away" in page.text, page.text
    line = next(li for li in page.text.split("<li") if c.node_id[:8] in li)
    assert "through" in line and b.node_id[:8] in line and c_name in line


async def test_a_peer_error_is_said_in_words(make_node, clients):
    a, b = await make_node("a", gossip_interval_s=0.5), await make_node("b")
    await a.json("POST", "/api/v1/peers", 201, json={"id": b.node_id, "url": b.url})
    link = a.app[NODE].gossip.links[b.home.identity.public]
    await wait_until(lambda: link.last_error, what="A's first refused round")
    admin = await signed_in(a, clients, "admin", "Ana")
    page = await admin.get("/admin/peers")
    assert "The peer does not trust this node yet" in page.text
    assert "HTTP 403" in page.text  # the details stay one click away
