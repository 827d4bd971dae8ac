"""Behind a reverse proxy (docs/operating.md): limits count each person, not the proxy.

With `trusted_proxies` set, a request from the proxy counts as coming from the last
X-Forwarded-For address; a request from anywhere else is refused (it would otherwise
pick its own address)."""

from __future__ import annotations

import pytest
from web_helpers import PASSWORD, add_person

from node.config import ConfigError, load_config


async def test_limits_follow_the_forwarded_address(make_node):
    node = await make_node(trusted_proxies=["127.0.0.1"], api_rate_per_address_s=0.001,
                           api_burst_per_address=2)
    for client in ("10.0.0.1", "10.0.0.2"):
        for _ in range(2):
            r = await node.get("/signin", role=None, headers={"X-Forwarded-For": client})
            assert r.status == 200
        r = await node.get("/signin", role=None, headers={"X-Forwarded-For": client})
        assert r.status == 429  # this person's budget, not the next one's
    r = await node.get("/signin", role=None)  # no forwarded address: not via the proxy
    assert r.status == 400


async def test_sign_in_failures_are_counted_per_person_behind_the_proxy(make_node):
    node = await make_node(trusted_proxies=["127.0.0.1"])
    add_person(node.home, "coordinator", "Cleo")
    form = {"name": "Nobody", "password": "wrong password"}
    for i in range(21):  # 21 names from one address: the address limit trips at 20
        page = await node.client.get("/signin", headers={"X-Forwarded-For": "10.0.0.9"})
        csrf = (await page.text()).split('name="csrf" value="')[1].split('"')[0]
        r = await node.client.post("/signin", data={**form, "name": f"n{i}", "csrf": csrf},
                                   headers={"X-Forwarded-For": "10.0.0.9"},
                                   allow_redirects=False)
    assert r.status == 429
    page = await node.client.get("/signin", headers={"X-Forwarded-For": "10.0.0.10"})
    csrf = (await page.text()).split('name="csrf" value="')[1].split('"')[0]
    r = await node.client.post("/signin", data={"name": "Cleo", "password": PASSWORD,
                                                "csrf": csrf},
                               headers={"X-Forwarded-For": "10.0.0.10"},
                               allow_redirects=False)
    assert r.status == 303  # another person behind the same proxy signs in


def test_trusted_proxies_must_be_addresses(tmp_path):
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_config(tmp_path, env={"AIDMESH_TRUSTED_PROXIES": "caddy"})
    assert load_config(tmp_path, env={"AIDMESH_TRUSTED_PROXIES": "127.0.0.1, ::1"}
                       ).trusted_proxies == ["127.0.0.1", "::1"]
