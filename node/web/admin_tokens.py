"""API tokens (admins): for programs, not people. A new token is shown once."""

from __future__ import annotations

from aiohttp import web

from ..runtime import NODE
from ..services import tokens
from ..services.errors import ServiceError
from ..store.ledger import now_ms
from .admin_common import admin_page
from .views import Form, Viewer, explain, page, redirect


async def _page(request: web.Request, viewer: Viewer, *, made: str | None = None,
                values: Form | dict | None = None, errors: dict[str, str] | None = None,
                status: int = 200) -> web.Response:
    listed = await request.app[NODE].store.read(tokens.list_tokens)
    return admin_page(request, viewer, "admin_tokens.html", {
        "tokens": listed, "made": made, "values": values or {}, "errors": errors or {},
        "notice": viewer.texts.gettext("Done.") if request.query.get("done") else "",
        "title": viewer.texts.gettext("API tokens")}, status=status)


@page("admin")
async def tokens_page(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
    return await _page(request, viewer)


@page("admin")
async def create(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    name, role = form.get("name", "").strip(), form.get("role", "")
    try:
        _id, token = await node.store.write(
            lambda c: tokens.create_token(c, role, name, now_ms()))
    except ServiceError as exc:
        return await _page(request, viewer, values=form, status=422,
                           errors={exc.field or "name": explain(exc, viewer.texts)})
    return await _page(request, viewer, made=token)


@page("admin")
async def revoke(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    token_id = request.match_info["id"]
    try:
        await node.store.write(lambda c: tokens.revoke_token(c, token_id, now_ms()))
    except ServiceError:
        raise web.HTTPNotFound() from None
    node.tokens.clear()  # the API stops taking it at its next request
    raise redirect("/admin/tokens?done=1")


def add_routes(app: web.Application) -> None:
    app.add_routes([web.get("/admin/tokens", tokens_page),
                    web.post("/admin/tokens", create),
                    web.post("/admin/tokens/{id}/revoke", revoke)])
