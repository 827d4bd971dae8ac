"""node/http/openapi.json documents exactly the client API routes, and the live API matches it.

Covered: every route under /api/v1 plus /healthz and /metrics. Federation
(/federation/...) is specified in docs/protocol.md instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from conftest import NEED, OFFER, expect_problem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.app import create_app
from node.config import load_config
from node.services import peers, webhooks
from node.services.errors import Invalid
from node.services.values import decimal_text, parse_time
from protocol import Identity
from protocol.kinds import LISTING_FIELDS, NEED_FIELDS

SPEC_PATH = Path(__file__).resolve().parent.parent / "node" / "http" / "openapi.json"
SPEC = json.loads(SPEC_PATH.read_text())
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def covered(path: str) -> bool:
    return path.startswith("/api/v1/") or path in ("/healthz", "/metrics")


def app_routes(tmp_path: Path) -> dict[tuple[str, str], Any]:
    """(METHOD, path template) -> handler, for the covered routes of a real app."""
    config = load_config(tmp_path)
    app = create_app(config, Identity.generate())
    out = {}
    for resource in app.router.resources():
        path = resource.canonical
        if not covered(path):
            continue
        for route in resource:
            if route.method == "HEAD":
                continue
            out[(route.method, path)] = route.handler
    return out


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op
            for path, item in SPEC["paths"].items()
            for method, op in item.items() if method in METHODS}


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), f"only local refs: {ref}"
    node: Any = SPEC
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# -- the document itself ------------------------------------------------------------------


def test_document_is_openapi_3_1():
    assert SPEC["openapi"].startswith("3.1.")
    assert SPEC["info"]["title"] and SPEC["info"]["version"]
    assert SPEC["components"]["securitySchemes"]["bearer"] == {
        **SPEC["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}


def test_documented_routes_equal_app_routes(tmp_path):
    routes = set(app_routes(tmp_path))
    assert ("GET", "/healthz") in routes and ("POST", "/api/v1/offers") in routes
    documented = set(operations())
    assert documented - routes == set(), "documented but not served"
    assert routes - documented == set(), "served but not in node/http/openapi.json"


def test_documented_roles_match_handlers(tmp_path):
    routes = app_routes(tmp_path)
    for key, op in operations().items():
        role = getattr(routes[key], "required_role", "admin")
        assert op.get("x-aidmesh-role", "missing") == role, key
        if role is None:
            assert op["security"] == [], key
        else:
            assert op.get("security", SPEC["security"]) == [{"bearer": []}], key
            assert role in op["description"], key
            assert "401" in op["responses"], key


def test_every_operation_is_complete():
    seen_ids = set()
    for (method, path), op in operations().items():
        assert op["responses"], (method, path)
        assert any(code.startswith("2") for code in op["responses"]), (method, path)
        assert op["operationId"] not in seen_ids
        seen_ids.add(op["operationId"])
        assert op.get("summary"), (method, path)
        params = [resolve(p["$ref"]) if "$ref" in p else p
                  for p in SPEC["paths"][path].get("parameters", []) + op.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", path)), (method, path)
        if method in ("POST", "PATCH") and path != "/api/v1/openapi.json":
            body = op.get("requestBody")
            if body is not None:
                for code in ("400", "413", "415", "422"):
                    assert code in op["responses"], (method, path, code)


def test_every_ref_resolves():
    refs = [n["$ref"] for n in walk(SPEC) if "$ref" in n]
    assert refs
    for ref in refs:
        resolve(ref)


def test_problem_schema_is_rfc_9457():
    problem = SPEC["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) >= {"type", "title", "status", "detail", "instance",
                                           "field", "request_id"}
    for name, response in SPEC["components"]["responses"].items():
        assert "application/problem+json" in response["content"], name


def test_input_schemas_match_protocol_fields():
    schemas = SPEC["components"]["schemas"]
    for name, fields in (("Offer", LISTING_FIELDS), ("Need", NEED_FIELDS)):
        required = {k for k, (_, req) in fields.items() if req}
        for variant in ("Input", "Patch"):
            schema = schemas[name + variant]
            assert schema["additionalProperties"] is False
            assert set(schema["properties"]) == set(fields), name + variant
        assert set(schemas[name + "Input"]["required"]) == required
        assert set(schemas[name]["properties"]) == set(fields) | {
            "id", "kind", "origin", "status", "created", "updated", "available_quantity",
            "committed_quantity"}


async def test_served_document_is_the_file(node):
    r = await node.get("/api/v1/openapi.json", role=None)
    assert r.status == 200 and r.content_type == "application/json"
    assert await r.json() == SPEC


@pytest.mark.parametrize("path,op_path", [
    ("/api/v1/offers", "/api/v1/offers"),
    ("/api/v1/needs", "/api/v1/needs"),
    (None, "/api/v1/logs/{author}/entries"),
])
async def test_documented_query_parameters_are_the_accepted_ones(node, path, op_path):
    path = path or f"/api/v1/logs/{node.node_id}/entries"
    r = await node.get(f"{path}?no_such_param=1", role="reader")
    detail = (await expect_problem(r, 400, "unknown-parameter", "no_such_param"))["detail"]
    accepted = set(detail.split("allowed: ")[1].split(", "))
    params = [resolve(p["$ref"]) if "$ref" in p else p
              for p in SPEC["paths"][op_path]["get"]["parameters"]]
    assert {p["name"] for p in params if p["in"] == "query"} == accepted


# -- live responses match the documented schemas --------------------------------------------


def check(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """A small JSON Schema checker for the keywords node/http/openapi.json uses."""
    if "$ref" in schema:
        check(value, resolve(schema["$ref"]), where)
        return
    if "oneOf" in schema:
        passed = 0
        for sub in schema["oneOf"]:
            try:
                check(value, sub, where)
                passed += 1
            except AssertionError:
                pass
        assert passed == 1, f"{where}: {value!r} matches {passed} of oneOf"
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        kinds = {"string": str, "object": dict, "array": list, "boolean": bool,
                 "null": type(None)}
        ok = any((t == "integer" and isinstance(value, int) and not isinstance(value, bool))
                 or (t == "number" and isinstance(value, (int, float))
                     and not isinstance(value, bool))
                 or (t in kinds and isinstance(value, kinds[t])) for t in types)
        assert ok, f"{where}: {value!r} is not {types}"
    if isinstance(value, str):
        if "pattern" in schema:
            assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
        assert len(value) <= schema.get("maxLength", len(value)), where
        assert len(value) >= schema.get("minLength", 0), where
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert value >= schema.get("minimum", value), where
        assert value <= schema.get("maximum", value), where
        if "exclusiveMinimum" in schema:
            assert value > schema["exclusiveMinimum"], where
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key!r}"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, sub in value.items():
            if key in props:
                check(sub, props[key], f"{where}.{key}")
            elif extra is False:
                raise AssertionError(f"{where}: undocumented property {key!r}")
            elif isinstance(extra, dict):
                check(sub, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{where}[{i}]")


async def call(node, method: str, path: str, op_path: str, expect: int,
               code: str | None = None, **kw) -> Any:
    """Make a request; assert its status is ``expect`` (and, for a problem, that its type is
    ``code`` and that nothing was written), and check it against the documented response."""
    assert (expect >= 400) == (code is not None), "a problem states its type, nothing else"
    before = node.home.snapshot() if code is not None else None
    r = await node.request(method, path, **kw)
    text = await r.text()
    assert r.status == expect, f"{method} {path}: expected {expect}, got {r.status} {text}"
    op = SPEC["paths"][op_path][method.lower()]
    assert str(r.status) in op["responses"], f"{method} {path}: undocumented {r.status} {text}"
    response = op["responses"][str(r.status)]
    if "$ref" in response:
        response = resolve(response["$ref"])
    content = response.get("content")
    if content is None:
        assert text == ""
        return None
    media, spec = next(iter(content.items()))
    assert r.content_type == media
    body = json.loads(text) if "json" in media else text
    check(body, spec["schema"])
    if code is not None:
        assert media == "application/problem+json", (method, path, media)
        assert body["type"] == f"urn:aidmesh:problem:{code}", (method, path, body)
        assert body["status"] == expect, body
        assert node.home.snapshot() == before, f"{method} {path} wrote something"
    return body


async def test_live_responses_match_schemas(node):
    node_id = node.node_id
    await call(node, "GET", "/healthz", "/healthz", 200, role=None)
    await call(node, "GET", "/metrics", "/metrics", 200, role=None)
    await call(node, "GET", "/api/v1/openapi.json", "/api/v1/openapi.json", 200, role=None)
    full = {**OFFER, "description": "d", "area": "881f1d4811fffff", "tags": ["t"],
            "available_from": "2026-01-01T00:00:00Z", "available_until": "2099-01-01T00:00:00Z",
            "language": "pt-BR"}
    for kind, body in (("offer", full), ("need", {**NEED, "radius_km": 3})):
        base = f"/api/v1/{kind}s"
        made = await call(node, "POST", base, base, 201, json=body)
        item = f"{base}/{made['id']}"
        await call(node, "GET", item, base + "/{id}", 200)
        await call(node, "PATCH", item, base + "/{id}", 200,
                   json={"title": "t2", "quantity": {"value": "1.5", "unit": "kg"}})
        await call(node, "GET", base + "?limit=1&status=all", base, 200)
        await call(node, "DELETE", item, base + "/{id}", 200)
        # documented problems
        await call(node, "PATCH", item, base + "/{id}", 409, "withdrawn", json={"title": "t3"})
        await call(node, "DELETE", item, base + "/{id}", 409, "withdrawn")
        await call(node, "POST", base, base, 422, "unknown-field", json={**body, "nope": 1})
        await call(node, "POST", base, base, 400, "malformed-json", data=b"{",
                   headers={"Content-Type": "application/json"})
        await call(node, "GET", base + "?status=x", base, 400, "invalid-parameter")
        await call(node, "GET", f"{base}/{'0' * 64}", base + "/{id}", 404, "not-found")
        await call(node, "POST", base, base, 403, "forbidden", json=body, role="reader")
        await call(node, "GET", base, base, 401, "unauthorized", role=None)
    await call(node, "GET", "/api/v1/node", "/api/v1/node", 200)
    await call(node, "GET", "/api/v1/logs", "/api/v1/logs", 200)
    await call(node, "GET", f"/api/v1/logs/{node_id}/entries?limit=2",
               "/api/v1/logs/{author}/entries", 200)
    await call(node, "GET", "/api/v1/forks", "/api/v1/forks", 200)
    made = await call(node, "POST", "/api/v1/tokens", "/api/v1/tokens", 201,
                      json={"role": "reader"})
    await call(node, "GET", "/api/v1/tokens", "/api/v1/tokens", 200)
    await call(node, "DELETE", f"/api/v1/tokens/{made['id']}", "/api/v1/tokens/{id}", 204)
    await call(node, "DELETE", f"/api/v1/tokens/{made['id']}", "/api/v1/tokens/{id}", 404,
               "not-found")


async def test_live_peer_responses_match_schemas(node):
    peer = Identity.generate().node_id
    await call(node, "GET", "/api/v1/peers", "/api/v1/peers", 200)
    # a peer that is not listening: the gossip loop fails in the background, harmlessly
    await call(node, "POST", "/api/v1/peers", "/api/v1/peers", 201,
               json={"id": peer, "url": "http://127.0.0.1:9"})
    listed = await call(node, "GET", "/api/v1/peers", "/api/v1/peers", 200)
    assert [p["id"] for p in listed["peers"]] == [peer]
    await call(node, "POST", "/api/v1/peers", "/api/v1/peers", 422, "unknown-field",
               json={"id": peer, "x": 1})
    await call(node, "DELETE", f"/api/v1/peers/{peer}", "/api/v1/peers/{id}", 204)
    await call(node, "DELETE", f"/api/v1/peers/{peer}", "/api/v1/peers/{id}", 404,
               "not-found")


def test_every_operation_documents_the_edge_refusals():
    """429 (rate limits, connections per address) and 503 (connection cap) can answer any
    request; 408 any request with a body (body_timeout_s)."""
    for (method, path), op in operations().items():
        assert {"429", "503"} <= set(op["responses"]), (method, path)
        if "requestBody" in op:
            assert "408" in op["responses"], (method, path)


# -- the schema's value rules and the node's validation agree exactly --------------------------


def _accepts(fn, *args) -> bool:
    try:
        fn(*args)
    except Invalid:
        return False
    return True


QUANTITY = SPEC["components"]["schemas"]["QuantityValue"]


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(st.from_regex(r"\A[0-9]{0,14}(\.[0-9]{0,5})?\Z"),
                 st.from_regex(r"\A[0-9eE.+\- _]{1,8}\Z"),
                 st.decimals(-10, 10**13, allow_nan=False, places=4).map(str),
                 st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-10, 10**13)))
def test_quantity_schema_is_the_validation(value):
    valid = jsonschema_rs.validator_for(QUANTITY).is_valid(value)
    assert valid == _accepts(decimal_text, value, "q"), value


TIME = {"type": "string", "format": "date-time"}


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
                  r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?\Z")))
def test_time_format_is_the_validation(value):
    valid = jsonschema_rs.validator_for(TIME, validate_formats=True).is_valid(value)
    if value[17:19] == "60":
        return  # leap seconds: the node takes one at any minute, validators differ
    assert valid == _accepts(parse_time, value, "t"), value


@pytest.mark.parametrize("schema,check", [("PeerInput", peers.check_url),
                                          ("WebhookInput", webhooks.check_url)])
def test_url_pattern_is_the_validation(schema, check):
    """Every URL the pattern allows is taken; what it refuses is refused, but for hosts the
    pattern leaves to format http-url's prose (inet_aton shorthands, non-ASCII names)."""
    pattern = re.compile(ecma(SPEC["components"]["schemas"][schema]["properties"]["url"]
                              ["pattern"]))

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern))
    def allowed_is_taken(url):
        assert _accepts(check, url), url

    allowed_is_taken()
    for url in ["http://0", "http://0.0.0.0", "http://[::]", "http://[0:0::0]:80",
                "http://a..b", "http://-a", "http://a.1", "http://1.2.3.4.5", "http://a:99999",
                "http://user@a", "ftp://a", "http://a b", "http://a/\x85", "http://" + "a" * 64,
                "http://" + "a." * 127 + "a", "http://a\u3000b", "http://[::1", "https://"]:
        assert not pattern.match(url) and not _accepts(check, url), url


def ecma(pattern: str) -> str:
    """An ECMA-262 pattern for Python's re: '$' ends the text (Python's also matches before
    a final newline)."""
    return re.sub(r"\$(?=\)|$)", r"\\Z", pattern)


def test_h3_fields_are_the_h3_cell_format():
    schemas, params = SPEC["components"]["schemas"], SPEC["components"]["parameters"]
    assert params["near"]["schema"] == {"type": "string", "format": "h3-cell"}
    for name in ("OfferInput", "OfferPatch", "NeedInput", "NeedPatch"):
        assert schemas[name]["properties"]["area"]["format"] == "h3-cell"
