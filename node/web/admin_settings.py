"""The group's settings (admins): name, about, languages, its own categories and units,
retention. Kept and published by services/settings.py (saved settings override
aidmesh.toml; what peers need goes out in a new `profile` entry)."""

from __future__ import annotations

import sqlite3

from aiohttp import web

from ..runtime import NODE
from ..services import areas, settings
from ..services.errors import ServiceError
from ..store.ledger import StoreError
from .admin_common import admin_page
from .views import Form, Viewer, append_as, explain, page, redirect


def _values(found: settings.Settings) -> dict[str, str]:
    return {"name": found.name, "about": found.about,
            "languages": ", ".join(found.languages),
            "categories": "\n".join(found.categories), "units": ", ".join(found.units),
            "retention_days": str(found.retention_days)}


async def _page(request: web.Request, viewer: Viewer, values: Form | dict | None,
                errors: dict[str, str], status: int = 200) -> web.Response:
    node = request.app[NODE]

    def read(c: sqlite3.Connection) -> tuple[settings.Settings, list[areas.Area]]:
        return settings.current(c, node.store.ledger, node.config), areas.list_areas(c)

    found, named = await node.store.read(read)
    return admin_page(request, viewer, "admin_settings.html", {
        "values": values if values is not None else _values(found), "errors": errors,
        "areas": named,
        "notice": viewer.texts.gettext("Saved.") if request.query.get("done") else "",
        "title": viewer.texts.gettext("The group's settings")}, status=status)


@page("admin")
async def settings_page(request: web.Request, viewer: Viewer, form: Form
                        ) -> web.StreamResponse:
    return await _page(request, viewer, None, {})


@page("admin")
async def save(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    fields = {k: form.get(k, "") for k in settings.KEYS}
    try:
        await append_as(request, viewer, lambda ledger, c: settings.save(
            ledger, c, node.config, fields))
    except ServiceError as exc:
        return await _page(request, viewer, fields, {exc.field or "name": explain(
            exc, viewer.texts)}, status=422)
    except StoreError as exc:  # our own log is forked: nothing can be published
        return await _page(request, viewer, fields, {"name": str(exc)}, status=409)
    raise redirect("/admin/settings?done=1")


def add_routes(app: web.Application) -> None:
    app.add_routes([web.get("/admin/settings", settings_page),
                    web.post("/admin/settings", save)])
