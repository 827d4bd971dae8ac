"""Moderation (admins): posts hidden or erased on this node, blocked groups, and undo.

Hiding and blocking are this node's own decisions, never replicated; erasing drops a
post's text here for good (services/moderation.py). After a block or unblock the served
state changes without an entry, so gossip compares in full again (as the API does).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from ..runtime import NODE
from ..services import moderation, node_report, overview
from ..services.errors import NotFound, ServiceError
from ..store.ledger import now_ms
from .admin_common import admin_page
from .views import Form, Viewer, explain, page, redirect

BLOCK_FIELDS = {"author": "author", "reason": "reason"}
HIDE_FIELDS = {"id": "id", "action": "action", "reason": "hide_reason"}


async def _page(request: web.Request, viewer: Viewer, *, values: Form | dict | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    node = request.app[NODE]

    def read(c: sqlite3.Connection) -> dict[str, Any]:
        blocked = moderation.blocks(c)
        names = overview.group_names(c)
        return {"decisions": node_report.moderated(c),
                "blocks": [{**b, "name": names.get(b["author"])} for b in blocked]}

    found = await node.store.read(read)
    done = {"undone": viewer.texts.gettext("The post shows again."),
            "unblocked": viewer.texts.gettext("The group is no longer blocked."),
            "blocked": viewer.texts.gettext("The group is blocked on this node."),
            "moderated": viewer.texts.gettext("Done.")}
    return admin_page(request, viewer, "admin_moderation.html", {
        **found, "values": values or {}, "errors": errors or {},
        "notice": done.get(request.query.get("done", ""), ""),
        "title": viewer.texts.gettext("Moderation")}, status=status)


@page("admin")
async def moderation_page(request: web.Request, viewer: Viewer, form: Form
                          ) -> web.StreamResponse:
    return await _page(request, viewer)


def _scope_changed(request: web.Request) -> None:
    node = request.app[NODE]
    node.store.version += 1  # the served state (heads in scope) changed
    if node.gossip is not None:
        node.gossip.resync()


@page("admin")
async def block(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    body = {"author": form.get("author", "").strip(), "reason": form.get("reason", "")}
    try:
        await node.store.write(lambda c: moderation.block(node.store.ledger, c, body,
                                                          now_ms()))
    except ServiceError as exc:
        return await _page(request, viewer, values=form, status=422, errors={
            BLOCK_FIELDS.get(exc.field or "", "author"): explain(exc, viewer.texts)})
    _scope_changed(request)
    raise redirect("/admin/moderation?done=blocked")


@page("admin")
async def unblock(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    try:
        await node.store.write(lambda c: moderation.unblock(c, form.get("author", "")))
    except ServiceError:
        raise web.HTTPNotFound() from None
    _scope_changed(request)
    raise redirect("/admin/moderation?done=unblocked")


@page("admin")
async def moderate(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    target = form.get("id", "").strip().rstrip("/").rpartition("/")[2]  # a pasted link too
    body = {"id": target, "action": form.get("action", ""),
            "reason": form.get("hide_reason", "")}
    try:
        await node.store.write(lambda c: moderation.moderate(c, body, now_ms()))
    except ServiceError as exc:
        return await _page(request, viewer, values=form, status=422, errors={
            HIDE_FIELDS.get(exc.field or "", "id"): explain(exc, viewer.texts)})
    raise redirect("/admin/moderation?done=moderated")


@page("admin")
async def undo(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    try:
        await node.store.write(lambda c: moderation.unhide(c, form.get("id", "")))
    except NotFound:
        raise web.HTTPNotFound() from None
    except ServiceError as exc:  # an erased post: its text is gone for good
        return await _page(request, viewer, status=409,
                           errors={"undo": explain(exc, viewer.texts)})
    raise redirect("/admin/moderation?done=undone")


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get("/admin/moderation", moderation_page),
        web.post("/admin/moderation", moderate),
        web.post("/admin/moderation/undo", undo),
        web.post("/admin/moderation/block", block),
        web.post("/admin/moderation/unblock", unblock),
    ])
