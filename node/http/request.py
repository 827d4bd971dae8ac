"""Reading client requests and writing JSON responses: the API's common ground."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ..runtime import NODE, Node
from ..services.values import strict_int
from .problems import Problem

PREFIX = "/api/v1"
T = TypeVar("T")


async def read_json(request: web.Request) -> Any:
    """The JSON body of a request that needs one."""
    _require_json(request)
    return _parse(await _read(request))


async def optional_json(request: web.Request) -> Any:
    """The JSON body of an action whose body may be left out: None for no body or an empty
    one, whatever its Content-Type; a body that is there must be JSON."""
    if not request.can_read_body or request.content_length == 0:
        return None
    _require_json(request)
    raw = await _read(request)
    return _parse(raw) if raw else None


def _require_json(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type",
                      "send the body as JSON with 'Content-Type: application/json'")


async def _read(request: web.Request) -> bytes:
    # The app's client_max_size is raised for federation pulls; the client API's own,
    # smaller limit is enforced here.
    config = request.app[NODE].config
    limit = config.max_body_bytes
    if (request.content_length or 0) > limit:
        raise Problem(413, "body-too-large", f"request body is larger than the limit of "
                      f"{limit} bytes")
    try:
        # A body that trickles in or never ends must not hold the connection.
        async with asyncio.timeout(config.body_timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise Problem(408, "body-timeout", f"the request body did not arrive within "
                      f"{config.body_timeout_s:g} s", headers={"Connection": "close"}) from None
    if len(raw) > limit:
        raise Problem(413, "body-too-large", f"request body is larger than the limit of "
                      f"{limit} bytes")
    return raw


def _parse(raw: bytes) -> Any:
    try:
        body = json.loads(raw, parse_constant=_no_constant)
        # Lone surrogates ("\ud800") parse but are not UTF-8: refuse them before they reach
        # msgpack or SQLite as a 500.
        json.dumps(body, ensure_ascii=False).encode()
        return body
    except (ValueError, UnicodeError) as exc:
        raise Problem(400, "malformed-json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "malformed-json", "the body is not valid JSON: nested too "
                      "deeply") from None


def _no_constant(name: str) -> Any:
    # NaN and Infinity are JavaScript, not JSON (RFC 8259); Python's parser takes them.
    raise ValueError(f"{name} is not a JSON value")


def check_params(request: web.Request, allowed: set[str] | frozenset[str]) -> None:
    for key in request.query:
        if key not in allowed:
            raise Problem(400, "unknown-parameter", f"unknown query parameter {key!r}; "
                          f"allowed: {', '.join(sorted(allowed))}", field=key)


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    value = strict_int(text)
    if value is None:
        raise Problem(400, "invalid-parameter", f"{name} must be an integer", field=name)
    if not lo <= value <= hi:
        raise Problem(400, "invalid-parameter", f"{name} must be between {lo} and {hi}",
                      field=name)
    return value


def page_limit(request: web.Request) -> int:
    config = request.app[NODE].config
    return int_param(request, "limit", config.page_size, 1, config.max_page_size)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def append(node: Node, fn: Callable[..., T]) -> T:
    """Run a service action that appends to this node's log, in the writer's transaction."""
    result = await node.store.write(lambda c: fn(node.store.ledger, c))
    node.metrics.entries.labels("local").inc()
    return result
