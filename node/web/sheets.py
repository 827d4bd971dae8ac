"""Spreadsheets in and out: the import page (coordinators) and the export page (readers).

The preview is not kept on the server: the page carries the uploaded bytes back in a
hidden field (base64, at most csv_read.MAX_BYTES), with the column choices. So "Check
again" and "Post" need no re-upload, nothing is left behind when a person walks away,
and a restart between preview and confirm loses nothing. Confirming plans again in the
write transaction, so what changed since the preview is taken into account.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from ..runtime import NODE
from ..services import areas, csv_columns, csv_export, csv_import, csv_read, vocabulary
from ..services.errors import Invalid, ServiceError
from ..store.ledger import now_ms
from .forms import category_label
from .views import Form, Viewer, append_as, explain, page, redirect, render

KEEP_DETAIL = ("unknown-category", "unknown-unit", "duplicate-row", "key-taken",
               "extra-cell", "column-twice")


def field_labels(viewer: Viewer) -> dict[str, str]:
    _ = viewer.texts.gettext
    return {"": _("Ignore this column"), "title": _("Title"), "category": _("Category"),
            "quantity": _("Quantity"), "unit": _("Unit"), "until": _("Until"),
            "from": _("From"), "area": _("Area"), "urgency": _("Urgency"),
            "tags": _("Tags"), "description": _("Details"), "kind": _("Offer or need"),
            "action": _("How"), "language": _("Language"), "key": _("Row key")}


def say(viewer: Viewer, error: csv_columns.CellError) -> str:
    """One problem of a row in the viewer's language where we know the case."""
    _ = viewer.texts.gettext
    known = {
        "bad-date": _("We cannot read this date. Write it like 23/11/2026, 23/11/2026 "
                      "18:00 or 2026-11-23."),
        "bad-quantity": _("Write a number above zero, with its unit if you like: 20, 2,5 "
                          "or 20 loaves."),
        "unit-alone": _("There is a unit but no quantity. Give the quantity too, or empty "
                        "the unit."),
        "unknown-area": _("The group has no area with this name. Use one from the Areas "
                          "page, or leave it empty."),
        "no-kind": _("Say whether this row is an offer or a need: add a column “kind”, "
                     "or choose one for the whole file."),
        "unknown-kind": _("Write “offer” or “need” here."),
        "bad-urgency": _("Write low, normal, high or critical here."),
        "bad-action": _("Write transfer, lend, deliverService or use here."),
        "no-title": _("The title is empty. Say in a few words what it is."),
        "no-category": _("The category is empty. Give one, like food/bread."),
        "no-title-column": _("No column holds the title. Choose which one does."),
        "not-csv": _("This is not a CSV file. Save the sheet as CSV (comma or semicolon "
                     "separated) and choose that file."),
        "empty-file": _("The file is empty. It needs a header row and one row per offer "
                        "or need."),
    }
    too_big = _("The file is too big: at most %(rows)d rows and %(kib)d KiB at once. "
                "Split it into smaller files.") % {"rows": csv_read.MAX_ROWS,
                                                     "kib": csv_read.MAX_BYTES // 1024}
    known["file-too-big"] = known["too-many-rows"] = too_big
    if error.code in KEEP_DETAIL:
        return error.detail
    return known.get(error.code) or explain(Invalid(error.code, error.detail), viewer.texts)


def _file_error(viewer: Viewer, exc: ServiceError) -> str:
    return say(viewer, csv_columns.CellError("file", exc.code, exc.detail))


def _kind(form: Form) -> str | None:
    kind = form.get("kind", "")
    return kind if kind in ("offer", "need") else None


def _chosen(form: Form, columns: int) -> dict[int, str]:
    out = {}
    for index in range(columns):
        value = form.get(f"map-{index}")
        if isinstance(value, str) and (value in csv_columns.FIELDS or value == ""):
            out[index] = value
    return out


def _upload(form: Form) -> tuple[bytes | None, str | None]:
    """The file's bytes: a new upload, else the ones the preview page carried back."""
    sent = form.get("file")
    if sent is not None and hasattr(sent, "file"):
        data = sent.file.read(csv_read.MAX_BYTES + 1)
        if data:
            return data, None
    carried = form.get("data", "")
    if isinstance(carried, str) and carried:
        try:
            return base64.b64decode(carried, validate=True), None
        except (binascii.Error, ValueError):
            pass
    return None, "file"


async def _show(request: web.Request, viewer: Viewer, *, data: bytes | None = None,
                form: Form | dict[str, str] | None = None, errors: dict[str, str] | None = None,
                status: int = 200) -> web.Response:
    node = request.app[NODE]
    form = form or {}
    context: dict[str, Any] = {
        "title": viewer.texts.gettext("Import from a spreadsheet"), "errors": errors or {},
        "kind": form.get("kind", ""), "labels": field_labels(viewer), "preview": None,
        "notice": _notice(viewer, form), "limit_rows": csv_read.MAX_ROWS,
        "limit_kib": csv_read.MAX_BYTES // 1024}
    if data is not None and not errors:
        try:
            headers = csv_read.read(data).headers
            options = csv_import.Options(kind=_kind(form), chosen=_chosen(form, len(headers)))
            now = now_ms()

            def read(c: Any) -> tuple[csv_import.Preview, dict[str, str]]:
                plan = csv_import.preview(c, node.store.ledger, data, options, now)
                return plan, {a.cell: a.name for a in areas.list_areas(c)}

            preview, named = await node.store.read(read)
        except ServiceError as exc:
            context["errors"] = {"file": _file_error(viewer, exc)}
            status = 422
        else:
            context.update(preview=preview, data=base64.b64encode(data).decode(),
                           say=lambda e: say(viewer, e), area_name=named,
                           category=lambda p: category_label(p, viewer.texts))
            if preview.mapping.problems:
                status = 422
    return render(request, viewer, "import.html", context, status=status)


def _notice(viewer: Viewer, form: Form | dict[str, str]) -> str:
    posted, updated = form.get("posted", ""), form.get("updated", "")
    if not (str(posted).isdigit() and str(updated).isdigit()):
        return ""
    return viewer.texts.gettext("Done: %(posted)s posted, %(updated)s changed.") % {
        "posted": posted, "updated": updated}


@page("coordinator")
async def import_page(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    return await _show(request, viewer, form=form)


@page("coordinator")
async def import_post(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    data, missing = _upload(form)
    if data is None:
        return await _show(request, viewer, form=form, status=422, errors={
            missing or "file": viewer.texts.gettext("Choose a CSV file to import.")})
    if form.get("do") != "post":
        return await _show(request, viewer, data=data, form=form)
    node = request.app[NODE]
    try:
        headers = csv_read.read(data).headers
    except ServiceError as exc:
        return await _show(request, viewer, form=form, status=422,
                           errors={"file": _file_error(viewer, exc)})
    options = csv_import.Options(kind=_kind(form), chosen=_chosen(form, len(headers)))
    config = node.config
    done = await append_as(request, viewer, lambda ledger, c: (
        vocabulary.publish(ledger, c, config),
        csv_import.commit(ledger, c, data, options, now_ms()))[1])
    if done.mapping.problems:
        return await _show(request, viewer, data=data, form=form)
    raise redirect(f"/import?posted={done.count('post')}&updated={done.count('update')}")


@page("reader")
async def export_page(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    return render(request, viewer, "export.html", {
        "title": viewer.texts.gettext("Export to a spreadsheet"), "what": csv_export.WHAT})


@page("reader")
async def export_file(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    what = request.match_info["what"]
    now = now_ms()
    try:
        data = await node.store.read(lambda c: csv_export.export(
            c, node.store.ledger, what, now, bom=form.get("bom") == "1",
            delimiter=form.get("delimiter", "comma"), scope=form.get("scope", "ours")))
    except ServiceError as exc:
        return render(request, viewer, "export.html", {
            "title": viewer.texts.gettext("Export to a spreadsheet"), "what": csv_export.WHAT,
            "errors": {"": explain(exc, viewer.texts)}}, status=400)
    name = csv_export.file_name(what, node.config.name, now)
    return web.Response(body=data, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get("/import", import_page),
        web.post("/import", import_post),
        web.get("/export", export_page),
        web.get("/export/{what:offers|needs|claims|handovers}.csv", export_file),
    ])
