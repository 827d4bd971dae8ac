"""Pages for offers and needs: Today, Browse, Post, one item, edit, withdraw, erase."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..runtime import NODE
from ..services import areas, claims, listings, matches, overview, people, vocabulary
from ..services.errors import ServiceError
from ..store.ledger import now_ms
from . import forms
from .views import Form, Viewer, append_as, field_errors, page, redirect, render

KINDS = ("offer", "need")
BROWSE_PARAMS = ("q", "category", "status", "cursor")
ITEM = "/{kind:offer|need}s/{id:[0-9a-f]{64}}"


def _kind(request: web.Request) -> str:
    kind = request.match_info["kind"]
    if kind not in KINDS:
        raise web.HTTPNotFound()
    return kind


def _id(request: web.Request) -> str:
    text = request.match_info["id"]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise web.HTTPNotFound()
    return text


async def _choices(request: web.Request) -> dict[str, Any]:
    """What the post form offers to pick from: categories, units, the group's areas."""
    node = request.app[NODE]
    ledger = node.store.ledger

    def read(c: Any) -> dict[str, Any]:
        return {"declared": vocabulary.declared(c, ledger),
                "units": vocabulary.unit_list(c, ledger), "areas": areas.list_areas(c)}

    return await node.store.read(read)


def _category(t: Any):
    return lambda path: forms.category_label(path, t)


@page("reader")
async def today(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    now = now_ms()
    data = await node.store.read(lambda c: overview.today(c, node.store.ledger, now))
    return render(request, viewer, "today.html", {
        **data, "title": viewer.texts.gettext("Today"), "live": True,
        "category": _category(viewer.texts), "notice": _notice(viewer, form)})


def _notice(viewer: Viewer, form: Form) -> str:
    _ = viewer.texts.gettext
    return {"posted": _("Posted. Other groups will see it in a moment."),
            "claimed": _("Sent. The other group will answer on their Claims page."),
            "saved": _("Saved."), "withdrawn": _("Withdrawn."),
            "erased": _("Erased here and on every node that has it."),
            "answered": _("Done.")}.get(form.get("done", ""), "")


@page("reader")
async def browse(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    choices = await _choices(request)
    kind = form.get("kind", "offer")
    kind = kind if kind in KINDS else "offer"
    params = {k: form[k] for k in BROWSE_PARAMS if form.get(k)}
    errors: dict[str, str] = {}
    if "category" in params:
        path = forms.category_path(params["category"], list(choices["declared"].categories))
        if path is None:
            errors["category"] = viewer.texts.gettext(
                "We do not know this category. Pick one from the list.")
            del params["category"]
        else:
            params["category"] = path
    area = next((a for a in choices["areas"] if a.name == form.get("area")), None)
    if area is not None:
        params["near"] = area.cell
        radius = form.get("radius", "10")
        params["radius_km"] = radius if radius in ("2", "5", "10", "25", "50") else "10"
    params["limit"] = "30"
    query = listings.parse_query(kind, params, node.config)
    if "status" not in params:
        query.status = None
    now = now_ms()

    def read(c: Any) -> tuple[Any, Any, dict[str, str]]:
        items, cursor = listings.search(c, query, now)
        return items, cursor, overview.group_names(c)

    try:
        items, cursor, names = await node.store.read(read)
    except ServiceError as exc:
        errors.update(field_errors(exc, viewer.texts, {"cursor": "", "q": "q"}))
        items, cursor, names = [], None, {}
    more = None
    if cursor:
        more = request.rel_url.update_query(cursor=cursor)
    return render(request, viewer, "browse.html", {
        "title": viewer.texts.gettext("Browse"), "items": items, "more": more,
        "names": names, "me": node.identity.node_id, "kind": kind, "values": form,
        "errors": errors, "areas": choices["areas"], "live": True,
        "category": _category(viewer.texts),
        "categories": forms.category_labels(viewer.texts,
                                            list(choices["declared"].categories))},
        status=400 if errors else 200)


def _post_title(viewer: Viewer, kind: str) -> str:
    _ = viewer.texts.gettext
    return _("Post an offer") if kind == "offer" else _("Post a need")


def _edit_title(viewer: Viewer, kind: str) -> str:
    _ = viewer.texts.gettext
    return _("Edit offer") if kind == "offer" else _("Edit need")


def _post_context(viewer: Viewer, kind: str, choices: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "areas": choices["areas"], "units": choices["units"],
            "categories": forms.category_labels(viewer.texts,
                                                list(choices["declared"].categories)),
            "actions": forms.ACTIONS}


@page("coordinator")
async def post_form(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    kind = _kind(request)
    choices = await _choices(request)
    values = {"until": forms.default_until(), "unit": "each", "urgency": "normal"}
    return render(request, viewer, "post.html", {
        **_post_context(viewer, kind, choices), "values": values, "errors": {},
        "title": _post_title(viewer, kind)})


@page("coordinator")
async def post(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    kind = _kind(request)
    choices = await _choices(request)
    checked = forms.listing(form, kind, viewer.texts, list(choices["declared"].categories),
                            choices["areas"])
    if not checked.errors:
        try:
            item = await append_as(request, viewer, lambda ledger, c: listings.post(
                ledger, c, kind, checked.body))
            raise redirect(f"/{kind}s/{item['id']}?done=posted")
        except ServiceError as exc:
            checked.errors.update(field_errors(exc, viewer.texts, forms.LISTING_FIELDS))
    return render(request, viewer, "post.html", {
        **_post_context(viewer, kind, choices), "values": form, "errors": checked.errors,
        "title": _post_title(viewer, kind)},
        status=422)


@page("reader")
async def item(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    kind, target = _kind(request), _id(request)
    return await _item_page(request, viewer, kind, target, {}, {})


async def _item_page(request: web.Request, viewer: Viewer, kind: str, target: str,
                     values: Any, errors: dict[str, str], status: int = 200
                     ) -> web.StreamResponse:
    node = request.app[NODE]
    ledger = node.store.ledger
    me = node.identity.node_id
    now = now_ms()
    private = viewer.can("coordinator")

    def read(c: Any) -> dict[str, Any]:
        listing = listings.get(c, kind, target, now)
        mine = listing["origin"] == me
        other_kind = "need" if kind == "offer" else "offer"
        by_kind = {"need": target} if kind == "need" else {"offer": target}
        return {
            "item": listing, "mine": mine,
            "fits": matches.list_matches(c, me, now, limit=10, **by_kind)[0],
            "claims": claims.list_claims(c, ledger, target=target, show_private=private,
                                         limit=50)[0],
            "ours": [] if mine else overview.own_listings(c, other_kind, now),
            "names": overview.group_names(c),
            "posted_by": people.posted_by(c, [target]).get(target) if private else None,
        }

    try:
        data = await node.store.read(read)
    except ServiceError:
        raise web.HTTPNotFound() from None
    return render(request, viewer, "item.html", {
        **data, "title": data["item"]["title"], "me": me, "values": values,
        "errors": errors, "live": True, "category": _category(viewer.texts),
        "notice": _notice(viewer, request.query)}, status=status)


@page("coordinator")
async def edit_form(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    kind, target = _kind(request), _id(request)
    node = request.app[NODE]
    now = now_ms()
    try:
        current = await node.store.read(lambda c: listings.get(c, kind, target, now))
    except ServiceError:
        raise web.HTTPNotFound() from None
    if current["origin"] != node.identity.node_id:
        raise web.HTTPNotFound()
    choices = await _choices(request)
    values = forms.form_values(current, viewer.texts)
    values["area"] = next((a.name for a in choices["areas"]
                           if a.cell == current.get("area")), "")
    return render(request, viewer, "post.html", {
        **_post_context(viewer, kind, choices), "values": values, "errors": {},
        "editing": target, "title": _edit_title(viewer, kind)})


@page("coordinator")
async def edit(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    kind, target = _kind(request), _id(request)
    choices = await _choices(request)
    checked = forms.listing(form, kind, viewer.texts, list(choices["declared"].categories),
                            choices["areas"], partial=True)
    if not checked.errors:
        try:
            await append_as(request, viewer, lambda ledger, c: (
                listings.update(ledger, c, kind, target, checked.body)))
            raise redirect(f"/{kind}s/{target}?done=saved")
        except ServiceError as exc:
            checked.errors.update(field_errors(exc, viewer.texts, forms.LISTING_FIELDS))
    return render(request, viewer, "post.html", {
        **_post_context(viewer, kind, choices), "values": form, "errors": checked.errors,
        "editing": target, "title": _edit_title(viewer, kind)}, status=422)


def _action(verb: str, done: str):
    @page("coordinator")
    async def handler(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
        kind, target = _kind(request), _id(request)
        act = listings.withdraw if verb == "withdraw" else listings.redact
        try:
            await append_as(request, viewer, lambda ledger, c: act(ledger, c, kind, target))
        except ServiceError as exc:
            return await _item_page(request, viewer, kind, target, {},
                                    field_errors(exc, viewer.texts, {}), status=409)
        raise redirect(f"/{kind}s/{target}?done={done}" if verb == "withdraw"
                       else f"/?done={done}")

    return handler


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get("/", today),
        web.get("/browse", browse),
        web.get("/post/{kind:offer|need}", post_form),
        web.post("/post/{kind:offer|need}", post),
        web.get(f"{ITEM}", item),
        web.get(f"{ITEM}/edit", edit_form),
        web.post(f"{ITEM}/edit", edit),
        web.post(f"{ITEM}/withdraw", _action("withdraw", "withdrawn")),
        web.post(f"{ITEM}/erase", _action("erase", "erased")),
    ])
