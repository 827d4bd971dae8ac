"""Pages for people: the setup and invite links, sign-in and out, one's account, and the
admin's list of people (invite, change a role, remove someone, end their sessions)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..runtime import NODE
from ..services import people
from ..services.errors import Forbidden, NotFound, ServiceError, TooMany
from ..store.ledger import now_ms
from .i18n import LANGUAGES
from .views import (
    LANG_COOKIE,
    SESSION_COOKIE,
    WEB,
    Form,
    Viewer,
    explain,
    page,
    redirect,
    render,
    secure,
    session_cookie,
)

JOIN_FIELDS = {"name": "name", "password": "password"}


def _safe_next(text: str) -> str:
    """Only a path on this node: never an open redirect to another site."""
    return text if text.startswith("/") and not text.startswith("//") else "/"


async def _invite(request: web.Request, viewer: Viewer) -> people.Invite | None:
    node = request.app[NODE]
    token, now = request.match_info["token"], now_ms()
    try:
        return await node.store.read(lambda c: people.invite(c, token, now))
    except ServiceError:
        return None


def _bad_link(request: web.Request, viewer: Viewer) -> web.Response:
    _ = viewer.texts.gettext
    return render(request, viewer, "error.html", {
        "title": _("This link does not work"),
        "message": _("This link was used, has expired or is mistyped. Ask your admin for "
                     "a new one.")}, status=404)


@page(None)
async def join_form(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    invite = await _invite(request, viewer)
    if invite is None:
        return _bad_link(request, viewer)
    return render(request, viewer, "join.html", {
        "invite": invite, "values": {}, "errors": {},
        "title": viewer.texts.gettext("Create your account")})


@page(None)
async def join(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    invite = await _invite(request, viewer)
    if invite is None:
        return _bad_link(request, viewer)
    token, now = request.match_info["token"], now_ms()
    name, password = form.get("name", ""), form.get("password", "")
    errors: dict[str, str] = {}
    if password != form.get("password2", ""):
        errors["password2"] = viewer.texts.gettext(
            "The two passwords are not the same. Type the same password twice.")
    else:
        try:
            person = await node.store.write(lambda c: people.accept_invite(
                c, token, name, password, now, language=viewer.texts.lang))
            return await _signed_in(request, person, "/")
        except ServiceError as exc:
            errors[JOIN_FIELDS.get(exc.field or "", "")] = explain(exc, viewer.texts)
    return render(request, viewer, "join.html", {
        "invite": invite, "values": {"name": name}, "errors": errors,
        "title": viewer.texts.gettext("Create your account")}, status=422)


async def _signed_in(request: web.Request, person: people.Person, to: str
                     ) -> web.StreamResponse:
    node = request.app[NODE]
    agent = request.headers.get("User-Agent", "")[:200]
    token, _session = await node.store.write(
        lambda c: people.open_session(c, person.id, agent, now_ms()))
    response = redirect(to)
    session_cookie(response, request, token)
    raise response


@page(None)
async def signin_form(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
    if viewer.person is not None:
        raise redirect("/")
    nobody = not await request.app[NODE].store.read(people.list_people)
    return render(request, viewer, "signin.html", {
        "values": {"next": _safe_next(form.get("next", "/"))}, "errors": {}, "nobody": nobody,
        "title": viewer.texts.gettext("Sign in")})


@page(None)
async def signin(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    name, password = form.get("name", "").strip(), form.get("password", "")
    address = request.remote or "?"
    limiter = request.app[WEB].signins
    now = now_ms()
    try:
        person = await node.store.read(
            lambda c: people.sign_in(c, limiter, name, password, address, now))
        return await _signed_in(request, person, _safe_next(form.get("next", "/")))
    except ServiceError as exc:
        status = 429 if isinstance(exc, TooMany) else 401
        headers = {"Retry-After": str(exc.extra.get("retry_after", 60))} \
            if isinstance(exc, TooMany) else {}
        response = render(request, viewer, "signin.html", {
            "values": {"name": name, "next": _safe_next(form.get("next", "/"))},
            "errors": {"password": explain(exc, viewer.texts)},
            "title": viewer.texts.gettext("Sign in")}, status=status)
        response.headers.update(headers)
        return response


@page(None)
async def signout(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await node.store.write(lambda c: people.close_session(c, token))
    response = redirect("/signin")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@page(None)
async def language(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    lang = form.get("lang", "")
    response = redirect(_safe_next(form.get("next", "/")))
    if lang in LANGUAGES:
        if viewer.person is not None:
            await node.store.write(lambda c: people.set_language(c, viewer.person.id, lang))
        response.set_cookie(LANG_COOKIE, lang, samesite="Lax", secure=secure(request),
                            path="/", max_age=365 * 24 * 3600, httponly=True)
    raise response


@page("reader")
async def account(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    sessions = await node.store.read(lambda c: people.sessions_of(c, viewer.person.id))
    return render(request, viewer, "account.html", {
        "sessions": sessions, "current": viewer.session.id,
        "title": viewer.texts.gettext("Account"),
        "notice": viewer.texts.gettext("Done.") if form.get("done") else ""})


@page("reader")
async def end_session(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
    node = request.app[NODE]
    session_id = request.match_info["id"]
    try:
        await node.store.write(lambda c: people.revoke_session(c, viewer.person, session_id))
    except ServiceError:
        raise web.HTTPNotFound() from None
    raise redirect("/account?done=1")


async def _people(request: web.Request, viewer: Viewer, *, link: str | None = None,
                  errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    node = request.app[NODE]

    def read(c: sqlite3.Connection) -> list[dict[str, Any]]:
        everyone = people.list_people(c)
        for p in everyone:
            p["sessions"] = [] if p["revoked"] else people.sessions_of(c, p["id"])
        return everyone

    _ = viewer.texts.gettext
    done = {"role": _("The role was changed."), "revoked": _(
        "The person was removed and signed out everywhere."),
        "ended": _("That session ended.")}
    return render(request, viewer, "people.html", {
        "people": await node.store.read(read), "link": link, "errors": errors or {},
        "me": viewer.person.id, "notice": done.get(request.query.get("done", ""), ""),
        "title": _("People")}, status=status)


@page("admin")
async def people_page(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
    return await _people(request, viewer)


@page("admin")
async def invite(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    role = form.get("role", "coordinator")
    try:
        token = await node.store.write(
            lambda c: people.create_invite(c, role, viewer.person, now_ms()))
    except ServiceError as exc:
        return await _people(request, viewer, errors={"role": explain(exc, viewer.texts)},
                             status=422)
    return await _people(request, viewer, link=people.join_link(node.config, token))


async def _change(request: web.Request, viewer: Viewer,
                  action: Callable[[sqlite3.Connection], None], done: str
                  ) -> web.StreamResponse:
    """Run a change to one person; refusals (the last admin, say) show on the page."""
    try:
        await request.app[NODE].store.write(action)
    except NotFound:
        raise web.HTTPNotFound() from None
    except ServiceError as exc:
        status = 403 if isinstance(exc, Forbidden) else 409
        return await _people(request, viewer, status=status,
                             errors={"people": explain(exc, viewer.texts)})
    raise redirect(f"/people?done={done}")


@page("admin")
async def set_role(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    person_id, role = request.match_info["id"], form.get("role", "")
    if role not in ("admin", "coordinator", "reader"):
        return await _people(request, viewer, status=422, errors={
            "people": viewer.texts.gettext("Pick one of the roles in the list.")})
    return await _change(request, viewer, lambda c: people.set_role(
        c, viewer.person, person_id, role), "role")


@page("admin")
async def revoke(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    """Remove a person: their sessions end in the same transaction, so their next page
    load goes to sign-in."""
    person_id = request.match_info["id"]
    return await _change(request, viewer, lambda c: people.revoke_person(
        c, viewer.person, person_id, now_ms()), "revoked")


@page("admin")
async def end_their_session(request: web.Request, viewer: Viewer, form: Form
                            ) -> web.StreamResponse:
    session_id = request.match_info["id"]
    return await _change(request, viewer, lambda c: people.revoke_session(
        c, viewer.person, session_id), "ended")


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get("/join/{token}", join_form), web.post("/join/{token}", join),
        web.get("/signin", signin_form), web.post("/signin", signin),
        web.post("/signout", signout), web.post("/language", language),
        web.get("/account", account), web.post("/account/sessions/{id}/end", end_session),
        web.get("/people", people_page), web.post("/people/invite", invite),
        web.post("/people/{id}/role", set_role), web.post("/people/{id}/revoke", revoke),
        web.post("/people/sessions/{id}/end", end_their_session),
    ])
