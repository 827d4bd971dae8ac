"""The admin pages' hub (/admin) and what they share; each noun has its own module:
admin_node.py (the node), admin_peers.py (peers, invite codes, the coalition),
admin_tokens.py (API tokens), admin_moderation.py, admin_webhooks.py, admin_settings.py.
People stay at /people (people.py). Admins only, every one of them."""

from __future__ import annotations

from aiohttp import web

from . import (
    admin_moderation,
    admin_node,
    admin_peers,
    admin_settings,
    admin_tokens,
    admin_webhooks,
)
from .admin_common import admin_page
from .views import Form, Viewer, page


@page("admin")
async def hub(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    return admin_page(request, viewer, "admin.html",
                      {"title": viewer.texts.gettext("Admin")})


def add_routes(app: web.Application) -> None:
    app.add_routes([web.get("/admin", hub)])
    for module in (admin_node, admin_peers, admin_tokens, admin_moderation, admin_webhooks,
                   admin_settings):
        module.add_routes(app)
