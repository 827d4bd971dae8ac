"""Webhooks (admins): add one (its signing secret shown once), send a test delivery, see
how far each has got and its last error, delete.

Deliveries are the worker's (Node.webhooks, workers/webhooks.py), told to pick up a new
or deleted webhook as the API does. A test delivery is one signed POST of an event of
type ``test`` (id 0) through the same guarded client, so a refused address or a receiver
that rejects the signature shows here at once; it does not move the webhook's cursor.
"""

from __future__ import annotations

from aiohttp import web

from ..runtime import NODE
from ..services import webhooks
from ..services.errors import ServiceError
from .admin_common import admin_page
from .views import Form, Viewer, explain, page, redirect


async def _page(request: web.Request, viewer: Viewer, *, secret: str | None = None,
                notice: str = "", values: Form | dict | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    hooks = await request.app[NODE].store.read(webhooks.list_all)
    done = {"deleted": viewer.texts.gettext("The webhook was deleted.")}
    return admin_page(request, viewer, "admin_webhooks.html", {
        "hooks": hooks, "secret": secret, "values": values or {}, "errors": errors or {},
        "notice": notice or done.get(request.query.get("done", ""), ""),
        "title": viewer.texts.gettext("Webhooks")}, status=status)


@page("admin")
async def webhooks_page(request: web.Request, viewer: Viewer, form: Form
                        ) -> web.StreamResponse:
    return await _page(request, viewer)


@page("admin")
async def add(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    types = form.getall("types", [])
    body = {"url": form.get("url", "").strip(), **({"types": types} if types else {})}
    try:
        _hook, secret = await node.store.write(lambda c: webhooks.create(c, body))
    except ServiceError as exc:
        return await _page(request, viewer, values=form, status=422, errors={
            "types" if exc.field == "types" else "url": explain(exc, viewer.texts)})
    if node.webhooks is not None:
        await node.webhooks.refresh()
    return await _page(request, viewer, secret=secret,
                       notice=viewer.texts.gettext("The webhook was added."))


async def _send_test(request: web.Request, hook_id: str) -> str | None:
    """POST a signed test event to a webhook; None when it answered 2xx, else why not."""
    node = request.app[NODE]
    rows = {r["id"]: r for r in await node.store.read(webhooks.rows)}
    if hook_id not in rows:
        raise web.HTTPNotFound()
    row = rows[hook_id]
    return await node.webhooks.send_test(hook_id, row["url"], row["secret"])


@page("admin")
async def test(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    problem = await _send_test(request, request.match_info["id"])
    _ = viewer.texts.gettext
    if problem is None:
        return await _page(request, viewer, notice=_("The test delivery arrived: the "
                                                     "receiver answered OK."))
    return await _page(request, viewer, status=502, errors={
        "test": _("The test delivery failed: {reason}. Check the address and that the "
                  "receiver is running.").format(reason=problem)})


@page("admin")
async def delete(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    try:
        await node.store.write(lambda c: webhooks.delete(c, request.match_info["id"]))
    except ServiceError:
        raise web.HTTPNotFound() from None
    if node.webhooks is not None:
        await node.webhooks.refresh()
    raise redirect("/admin/webhooks?done=deleted")


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get("/admin/webhooks", webhooks_page),
        web.post("/admin/webhooks", add),
        web.post("/admin/webhooks/{id}/test", test),
        web.post("/admin/webhooks/{id}/delete", delete),
    ])
