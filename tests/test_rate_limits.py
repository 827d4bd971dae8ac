"""Client API rate limits: per token and per address, 429 with Retry-After, counted."""

from __future__ import annotations

PROBLEM = "urn:aidmesh:problem:rate-limited"


async def burst(node, count: int, **kw) -> list[int]:
    statuses = []
    for _ in range(count):
        r = await node.get("/api/v1/offers", **kw)
        statuses.append(r.status)
        if r.status == 429:
            problem = await r.json()
            assert problem["type"] == PROBLEM and int(r.headers["Retry-After"]) >= 1
    return statuses


async def test_one_token_is_limited_and_another_is_not(make_node):
    node = await make_node(api_rate_per_s=1.0, api_burst=10)
    statuses = await burst(node, 30, role="reader")
    assert statuses[:10] == [200] * 10 and set(statuses[10:]) == {429}
    assert (await node.get("/api/v1/offers", role="coordinator")).status == 200
    assert (await node.get("/healthz", role=None)).status == 200  # never limited
    metrics = await (await node.get("/metrics", role=None)).text()
    assert 'aidmesh_rate_limited_total{scope="token"} 20.0' in metrics


async def test_one_address_is_limited_before_its_tokens_are_checked(make_node):
    node = await make_node(api_rate_per_address_s=1.0, api_burst_per_address=5)
    statuses = await burst(node, 12, role=None, token="amt_000000000000_not-a-token")
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    metrics = await (await node.get("/metrics", role=None)).text()
    assert 'aidmesh_rate_limited_total{scope="address"}' in metrics


async def test_limits_can_be_turned_off(make_node):
    node = await make_node(api_rate_per_s=0, api_rate_per_address_s=0, api_burst=1,
                           api_burst_per_address=1)
    assert set(await burst(node, 50, role="reader")) == {200}
