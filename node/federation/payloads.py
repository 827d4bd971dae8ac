"""POST /federation/v1/payloads: payloads of named entries, for peers that lack them.

A peer that stored an entry without its payload (a relay sent nil and no redact explains
it) asks every peer for it again (spec §13.4). The answer is one page of frames
[signed header, payload] for the asked entries whose payload this node holds; an erased,
redacted or missing payload is left out, never sent as nil.

Registered inside the federation sub-app, so its signature middleware (server.py) has
checked the caller and read the body before this handler runs.
"""

from __future__ import annotations

from aiohttp import web

from protocol import ProtocolError
from protocol.sync import decode_payload_request

from ..http.problems import Problem
from ..runtime import NODE, Node, require
from ..services import replication
from .httpsig import caller_of

FRAMES_TYPE = "application/x-aidmesh-frames"


@require(None)
async def payloads(request: web.Request) -> web.Response:
    node: Node = request.config_dict[NODE]
    body = await request.read()  # already read (and bounded) by the middleware: cached
    try:
        ids = decode_payload_request(body)
    except ProtocolError as exc:
        raise Problem(400, exc.code, exc.detail) from None
    me, hops = node.identity.public, node.config.hops
    page = await node.store.read(lambda c: replication.served_payloads(c, me, hops, ids))
    node.gossip.record_outbound(caller_of(request.headers), len(page))
    return web.Response(body=page, content_type=FRAMES_TYPE)


def add_routes(app: web.Application) -> None:
    """Called by server.federation_app()."""
    app.add_routes([web.post("/payloads", payloads)])
