"""The vocabularies in the client API: /api/v1/categories and /api/v1/units.

Also publishes the group's declared categories and units (config) in its profile when
the node starts, so peers can show them and this node's checks accept them.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from protocol import ProtocolError

from ..runtime import NODE, require
from ..services import vocabulary
from ..store.ledger import StoreError
from .request import PREFIX, check_params, json_response

log = logging.getLogger("aidmesh")


@require("reader")
async def get_categories(request: web.Request) -> web.Response:
    check_params(request, set())
    node = request.app[NODE]
    items = await node.store.read(lambda c: vocabulary.categories(c, node.store.ledger))
    return json_response({"items": items})


@require("reader")
async def get_units(request: web.Request) -> web.Response:
    check_params(request, set())
    node = request.app[NODE]
    items = await node.store.read(lambda c: vocabulary.unit_list(c, node.store.ledger))
    return json_response({"items": items})


async def publish_profile(app: web.Application) -> None:
    """On startup (after the store opened): a new profile if the settings' categories or
    units differ from the latest one."""
    node = app[NODE]
    try:
        await node.store.write(lambda c: vocabulary.publish(node.store.ledger, c, node.config))
    except (StoreError, ProtocolError) as exc:  # a frozen own log: serve anyway, say why
        log.warning(json.dumps({"event": "profile-not-published", "error": str(exc)}))


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get(f"{PREFIX}/categories", get_categories),
        web.get(f"{PREFIX}/units", get_units),
    ])
    app.on_startup.append(publish_profile)
