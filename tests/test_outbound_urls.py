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
