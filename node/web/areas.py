"""The group's named areas (admins): what coordinators pick instead of typing a cell."""

from __future__ import annotations

from aiohttp import web

from ..runtime import NODE
from ..services import areas
from ..services.errors import ServiceError
from ..store.ledger import now_ms
from .views import Form, Viewer, explain, page, redirect, render


async def _page(request: web.Request, viewer: Viewer, values: Form | dict,
                errors: dict[str, str], status: int = 200) -> web.Response:
    node = request.app[NODE]
    named = await node.store.read(areas.list_areas)
    return render(request, viewer, "areas.html", {
        "areas": named, "values": values, "errors": errors,
        "title": viewer.texts.gettext("Areas")}, status=status)


@page("admin")
async def areas_page(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    return await _page(request, viewer, {}, {})


@page("admin")
async def add(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    errors: dict[str, str] = {}
    try:
        lat, lng = (float(form.get(k, "").strip().replace(",", ".")) for k in ("lat", "lng"))
    except ValueError:
        errors["lat"] = viewer.texts.gettext(
            "Stand in the area and press “Use my location”, or write its latitude and "
            "longitude as numbers, like 40.4168 and -3.7038.")
    if not errors:
        try:
            await node.store.write(lambda c: areas.add(c, form.get("name", ""), lat, lng,
                                                       now_ms()))
            raise redirect("/areas")
        except ServiceError as exc:
            errors[{"location": "lat"}.get(exc.field or "", "name")] = explain(
                exc, viewer.texts)
    return await _page(request, viewer, form, errors, status=422)


@page("admin")
async def remove(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    try:
        await node.store.write(lambda c: areas.remove(c, form.get("name", "")))
    except ServiceError:
        pass  # already gone: the page shows what is left
    raise redirect("/areas")


def add_routes(app: web.Application) -> None:
    app.add_routes([web.get("/areas", areas_page), web.post("/areas", add),
                    web.post("/areas/remove", remove)])
