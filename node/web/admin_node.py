"""The node page (admins): who this node is, what it holds, and its forks in words."""

from __future__ import annotations

import asyncio

from aiohttp import web

from protocol import VERSION

from .. import __version__
from ..runtime import NODE
from ..services import node_report, people
from .admin_common import admin_page
from .views import Form, Viewer, page


@page("admin")
async def node_page(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    report = await node.store.read(lambda c: node_report.node(c, node.store.ledger))
    disk = await asyncio.get_running_loop().run_in_executor(
        None, node_report.disk_use, node.config.home)
    return admin_page(request, viewer, "admin_node.html", {
        **report, "id": node.identity.node_id, "url": people.base_url(node.config),
        "public_url": node.config.public_url, "version": __version__,
        "protocol_version": VERSION, "disk": disk, "home": str(node.config.home),
        "title": viewer.texts.gettext("The node")})


def add_routes(app: web.Application) -> None:
    app.add_routes([web.get("/admin/node", node_page)])
