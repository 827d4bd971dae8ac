"""Live pages, static files, and the web app's own "not found" page.

Live: a signed-in page opens an EventSource on /live and, when something is committed,
fetches itself again and swaps its lists; without JavaScript a Refresh link does the same.
The stream only says that something changed (an event id), never what: what a person may
see is decided when the page is rendered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from ..runtime import NODE, require
from .views import WEB, Form, Viewer, not_found, page

STATIC = Path(__file__).parent / "static"
TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
PING_S = 15.0


@page("reader")
async def live(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    store, state = request.app[NODE].store, request.app[WEB]
    seen = store.events_seq
    resp = EventSourceResponse(ping_interval=PING_S, send_timeout=30.0)
    await resp.prepare(request)
    state.streams.add(resp)
    try:
        async with resp:
            while resp.is_connected() and not state.stopping:
                if await store.wait_events(seen, timeout=PING_S):
                    seen = store.events_seq
                    await resp.send(str(seen), event="change", id=str(seen))
    except (ConnectionError, RuntimeError, TimeoutError):
        pass  # the page went away
    finally:
        state.streams.discard(resp)
    return resp


async def _stop_streams(app: web.Application) -> None:
    state = app[WEB]
    state.stopping = True
    for resp in list(state.streams):
        resp.stop_streaming()
    if NODE in app:
        app[NODE].store.wake_listeners()


def _static_files() -> dict[str, tuple[bytes, str, str]]:
    """The few assets, read once: name -> (bytes, content type, etag)."""
    return {p.name: (p.read_bytes(), TYPES[p.suffix],
                     '"' + hashlib.sha256(p.read_bytes()).hexdigest()[:16] + '"')
            for p in STATIC.iterdir() if p.suffix in TYPES}


@page(None)
async def missing(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    return not_found(request, viewer)


def add_routes(app: web.Application) -> None:
    files = _static_files()

    @require(None)
    async def static(request: web.Request) -> web.StreamResponse:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, kind, etag = found
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type=kind, charset="utf-8", headers={
            "ETag": etag, "Cache-Control": "no-cache"})

    app.on_shutdown.append(_stop_streams)
    app.add_routes([web.get("/static/{name}", static), web.get("/live", live)])


def add_fallback(app: web.Application) -> None:
    """Last: any other GET outside the API and federation is a page that does not exist."""
    app.add_routes([web.get(r"/{tail:(?!api/|federation/).*}", missing)])
