"""The node itself: health, metrics, OpenAPI, node info, raw logs and fork proofs."""

from __future__ import annotations

from importlib import resources

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from protocol import VERSION, ProtocolError, parse_node_id

from .. import __version__
from ..runtime import NODE, require
from ..services import status
from .problems import Problem
from .request import PREFIX, check_params, int_param, json_response


@require(None)
async def healthz(request: web.Request) -> web.Response:
    node = request.app[NODE]
    lag = await node.store.read(status.projector)
    return json_response({"status": "ok", "node": node.identity.node_id, "projector": lag})


@require(None)
async def metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    lag = await node.store.read(status.projector)
    # Read at scrape time into a registry of its own: nothing to keep in step.
    gauges = CollectorRegistry()
    Gauge("aidmesh_projector_lag_entries", "Entries stored but not yet folded into listings, "
          "search, matches and events", registry=gauges).set(lag["lag_entries"])
    Gauge("aidmesh_projector_lag_seconds", "How long the oldest entry not yet folded has "
          "waited", registry=gauges).set(lag["lag_seconds"])
    body = generate_latest(node.metrics.registry) + generate_latest(gauges)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@require(None)
async def openapi(request: web.Request) -> web.Response:
    text = resources.files("node.http").joinpath("openapi.json").read_text()
    return web.Response(text=text, content_type="application/json")


@require("reader")
async def node_info(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response({
        "id": node.identity.node_id,
        "name": node.config.name,
        "version": __version__,
        "protocol_version": VERSION,
        "seal_key": node.identity.seal_public().hex(),
        "counts": await node.store.read(status.counts),
    })


@require("reader")
async def logs(request: web.Request) -> web.Response:
    return json_response({"logs": await request.app[NODE].store.read(status.logs)})


@require("reader")
async def log_entries(request: web.Request) -> web.Response:
    node = request.app[NODE]
    check_params(request, {"after", "limit"})
    try:
        author = parse_node_id(request.match_info["author"])
    except ProtocolError as exc:
        raise Problem(404, "not-found", exc.detail, field="author") from None
    after = int_param(request, "after", 0, 0, 2**53)
    limit = int_param(request, "limit", 100, 1, 500)
    entries = await node.store.read(lambda c: status.log_entries(c, author, after, limit))
    return json_response({"author": request.match_info["author"], "entries": entries,
                          "next_after": entries[-1]["seq"] if len(entries) == limit else None})


@require("reader")
async def forks(request: web.Request) -> web.Response:
    return json_response({"forks": await request.app[NODE].store.read(status.forks)})


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
        web.get(f"{PREFIX}/openapi.json", openapi),
        web.get(f"{PREFIX}/node", node_info),
        web.get(f"{PREFIX}/logs", logs),
        web.get(f"{PREFIX}/logs/{{author}}/entries", log_entries),
        web.get(f"{PREFIX}/forks", forks),
    ])
