"""Client API for the event journal: a Server-Sent Events stream and outbound webhooks.

``GET /api/v1/events`` (reader) replays the events after ``Last-Event-ID`` (or
``?after=N``; without either, only events committed from now on), then streams new ones
as their transactions commit. Each message has ``id:`` the event id, ``event:`` its type
and ``data:`` the JSON object ``{id, type, created, data}`` that webhooks receive too
(see `events.page`). ``?types=listing,match`` keeps only those types. A comment line
(``: ping``) every PING_INTERVAL_S keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from ..runtime import NODE, REQUEST_ID, require
from ..services import events, webhooks
from ..store.ledger import now_ms
from .problems import Problem
from .request import PREFIX, check_params, json_response, read_json

_EVENT_ID = re.compile(r"^[0-9]{1,16}\Z")
PING_INTERVAL_S = 15.0
SEND_TIMEOUT_S = 30.0  # a client that stops reading for this long is dropped
BATCH = 500


@dataclass
class Streams:
    """Open SSE responses, so app shutdown can end them instead of waiting on them."""

    open: set[EventSourceResponse] = field(default_factory=set)
    stopping: bool = False


STREAMS = web.AppKey("event_streams", Streams)


def _start_after(request: web.Request, head: int) -> int:
    """Last-Event-ID, else ?after, else the head; both are checked even when both come."""
    start = None
    for name, text in (("Last-Event-ID", request.headers.get("Last-Event-ID")),
                       ("after", request.query.get("after"))):
        if text is None:
            continue
        if not _EVENT_ID.match(text):  # not isdigit(): that takes '²', which int() refuses
            raise Problem(400, "invalid-parameter", f"{name} must be an event id (a "
                          "non-negative integer of at most 16 digits)", field=name)
        start = int(text) if start is None else start
    return head if start is None else start


def _types(request: web.Request) -> frozenset[str] | None:
    text = request.query.get("types")
    if text is None:
        return None
    # Exactly as documented ("listing,match"): no blanks, no empty items.
    types = frozenset(text.split(","))
    if not types <= set(events.EVENT_TYPES):
        raise Problem(400, "invalid-parameter", f"types is a comma-separated list of "
                      f"{', '.join(events.EVENT_TYPES)}", field="types")
    return types


@require("reader")
async def stream(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    streams = request.app[STREAMS]
    check_params(request, {"after", "types"})
    types = _types(request)
    after = _start_after(request, node.store.events_seq)
    if streams.stopping:
        raise Problem(503, "unavailable", "the node is shutting down")
    resp = EventSourceResponse(ping_interval=PING_INTERVAL_S, send_timeout=SEND_TIMEOUT_S)
    resp.headers["X-Request-Id"] = request[REQUEST_ID]
    await resp.prepare(request)
    streams.open.add(resp)
    try:
        async with resp:
            while not streams.stopping and resp.is_connected():
                now = now_ms()
                scanned, items = await node.store.read(
                    lambda c, a=after, n=now: events.page(c, a, BATCH, n, types))
                for item in items:
                    await resp.send(json.dumps(item, ensure_ascii=False),
                                    id=str(item["id"]), event=item["type"])
                if scanned > after:
                    after = scanned
                    continue  # read on until a page comes back empty
                await node.store.wait_events(after, timeout=PING_INTERVAL_S)
    except (ConnectionError, RuntimeError, TimeoutError):
        pass  # the client went away (or stalled past the send timeout)
    finally:
        streams.open.discard(resp)
    return resp


async def _stop_streams(app: web.Application) -> None:
    streams = app[STREAMS]
    streams.stopping = True
    for resp in list(streams.open):
        resp.stop_streaming()
    if NODE in app:
        app[NODE].store.wake_listeners()


# -- webhooks -------------------------------------------------------------------------------


@require("admin")
async def create_webhook(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_json(request)
    hook, secret = await node.store.write(lambda c: webhooks.create(c, body))
    if node.webhooks is not None:
        await node.webhooks.refresh()
    return json_response({**hook, "secret": secret}, status=201,
                         headers={"Location": f"{PREFIX}/webhooks/{hook['id']}"})


@require("admin")
async def list_webhooks(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response({"webhooks": await node.store.read(webhooks.list_all)})


@require("admin")
async def delete_webhook(request: web.Request) -> web.Response:
    node = request.app[NODE]
    hook_id = request.match_info["id"]
    await node.store.write(lambda c: webhooks.delete(c, hook_id))
    if node.webhooks is not None:
        await node.webhooks.refresh()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app[STREAMS] = Streams()
    app.on_shutdown.append(_stop_streams)
    app.add_routes([
        web.get(f"{PREFIX}/events", stream),
        web.post(f"{PREFIX}/webhooks", create_webhook),
        web.get(f"{PREFIX}/webhooks", list_webhooks),
        web.delete(f"{PREFIX}/webhooks/{{id}}", delete_webhook),
    ])
