"""Peer and webhook URLs are checked when stored: a 422 naming the problem, nothing kept."""

from __future__ import annotations

import pytest

from protocol import Identity

BAD = [
    "http://0", "http://0:8080/", "http://0.0.0.0:8080", "http://[::]:80/", "http://0x0",
    "http://exa mple.org", "http://host\x1c.org/", "http://ex\u0085ample.org",
    "http://bad\ufeff.org", "ftp://example.org", "http://:80", "http://-bad-.org",
    "http://a..b.org", "http://example.org:99999", "http://user:pw@example.org",
    "http://256.1.1.1.1", "//example.org", "example.org",
]


@pytest.mark.parametrize("url", BAD)
async def test_bad_outbound_urls_are_refused_at_creation(node, url):
    before = node.home.snapshot()
    for path, body in (("/api/v1/peers", {"id": Identity.generate().node_id, "url": url}),
                       ("/api/v1/webhooks", {"url": url})):
        r = await node.post(path, json=body)
        problem = await r.json()
        assert r.status == 422, (path, url, problem)
        assert problem["type"] == "urn:aidmesh:problem:invalid-field"
        assert problem["field"] == "url"
    assert node.home.snapshot() == before


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "https://example.org/",
                                 "http://[::1]:8080", "http://bäckerei.example:8080"])
async def test_usable_peer_urls_are_kept(node, url):
    r = await node.post("/api/v1/peers", json={"id": Identity.generate().node_id, "url": url})
    assert r.status == 201, await r.text()


async def test_a_peer_name_resolving_into_a_denied_range_is_not_called(make_node, aiohttp_server):
    from aiohttp import web

    calls = []

    async def anything(request):
        calls.append(request.path)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    server = await aiohttp_server(app, host="127.0.0.1")
    node = await make_node(outbound_deny="127.0.0.0/8, ::1/128")
    peer = Identity.generate().node_id
    # By name: the resolver drops the refused addresses; by literal: checked before connecting.
    for url in (f"http://localhost:{server.port}", f"http://127.0.0.1:{server.port}"):
        r = await node.post("/api/v1/peers", json={"id": peer, "url": url})
        assert r.status == 201

        async def refused() -> bool:
            peers = (await node.json("GET", "/api/v1/peers"))["peers"]
            return "refused address" in (peers[0]["last_error"] or "")

        from conftest import wait_for

        await wait_for(refused, what="the refusal in the peer's status")
    assert calls == []


async def test_gossip_never_follows_a_redirect(make_node, aiohttp_server):
    from aiohttp import web
    from conftest import wait_for

    followed = []

    async def moved(request):
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async def elsewhere(request):
        followed.append(request.path)
        return web.Response(status=200, body=b"")

    app = web.Application()
    app.router.add_get("/federation/v1/state", moved)
    app.router.add_get("/elsewhere", elsewhere)
    server = await aiohttp_server(app, host="127.0.0.1")
    node = await make_node()
    r = await node.post("/api/v1/peers", json={"id": Identity.generate().node_id,
                                               "url": f"http://127.0.0.1:{server.port}"})
    assert r.status == 201

    async def failed() -> str | None:
        error = (await node.json("GET", "/api/v1/peers"))["peers"][0]["last_error"]
        return error if error and "302" in error else None

    await wait_for(failed, what="the redirect reported as an error")
    assert followed == []
