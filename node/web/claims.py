"""Pages for exchanges: claim an offer or a need, answer claims, record hand-overs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..runtime import NODE
from ..services import claims, overview
from ..services.errors import ServiceError
from ..store.ledger import now_ms
from . import forms
from .listings import ITEM, _id, _item_page, _kind
from .views import Form, Viewer, append_as, explain, field_errors, page, redirect, render

ACTIONS = ("accept", "decline", "fulfil")


@page("coordinator")
async def claim(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    """Claim (part of) another group's offer, or offer to fill its need."""
    kind, target = _kind(request), _id(request)
    checked = forms.claim(form, viewer.texts)
    if not checked.errors:
        try:
            body = claims.claim_body(checked.body)
            await append_as(request, viewer, lambda ledger, c: (
                claims.make_claim(ledger, c, kind, target, body, now_ms())))
            raise redirect(f"/{kind}s/{target}?done=claimed")
        except ServiceError as exc:
            checked.errors.update(field_errors(exc, viewer.texts, forms.CLAIM_FIELDS))
    return await _item_page(request, viewer, kind, target, form, checked.errors, status=422)


@page("reader")
async def claims_page(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
    node = request.app[NODE]
    ledger = node.store.ledger
    private = viewer.can("coordinator")

    def read(c: Any) -> dict[str, Any]:
        incoming = claims.list_claims(c, ledger, direction="incoming", show_private=private,
                                      limit=100)[0]
        outgoing = claims.list_claims(c, ledger, direction="outgoing", show_private=private,
                                      limit=100)[0]
        titles = overview.titles(c, [x["target"] for x in incoming + outgoing])
        return {"incoming": incoming, "outgoing": outgoing, "titles": titles,
                "names": overview.group_names(c)}

    data = await node.store.read(read)
    errors = request.get("claim_errors", {})
    return render(request, viewer, "claims.html", {
        **data, "title": viewer.texts.gettext("Claims"), "me": node.identity.node_id,
        "live": True, "errors": errors, "notice": _done(viewer, form)},
        status=409 if errors else 200)


def _done(viewer: Viewer, form: Form) -> str:
    return viewer.texts.gettext("Done.") if form.get("done") else ""


def respond(action: str):
    @page("coordinator")
    async def handler(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
        claim_id = _id(request)
        body: dict[str, Any] = {}
        errors: dict[str, str] = {}
        if action in ("accept", "fulfil"):
            value = forms.amount(form.get("quantity", ""), viewer.texts, errors)
            if value is not None:
                body["quantity"] = value
        if action == "accept":
            private = {k: form.get(k, "").strip() for k in ("address", "phone", "notes")}
            private = {k: v for k, v in private.items() if v}
            if private:
                body["private"] = private
        if action == "decline" and form.get("reason", "").strip():
            body["reason"] = form.get("reason", "").strip()
        if not errors:
            try:
                checked = claims.response_body(action, body)
                await append_as(request, viewer, lambda ledger, c: (
                    claims.respond(ledger, c, action, claim_id, checked, now_ms())))
                raise redirect(f"/claims?done={action}#claim-{claim_id}")
            except ServiceError as exc:
                errors = {claim_id: explain(exc, viewer.texts)}
        else:
            errors = {claim_id: next(iter(errors.values()))}
        request["claim_errors"] = errors
        return await claims_page.inner(request, viewer, form)

    return handler


def add_routes(app: web.Application) -> None:
    app.add_routes([web.post(f"{ITEM}/claim", claim), web.get("/claims", claims_page)])
    app.add_routes([web.post(f"/claims/{{id:[0-9a-f]{{64}}}}/{action}", respond(action))
                    for action in ACTIONS])
