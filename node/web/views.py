"""What every page shares: who is looking, in which language, CSRF, rendering, headers.

Sessions are rows in the node's own SQLite (services/people.py), not aiohttp-session:
a person must be able to list and end their sessions, and an admin's revocation must end
them at once, which a signed cookie store cannot do.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from protocol import ProtocolError

from ..runtime import NODE, require
from ..services import people
from ..services.errors import (
    BadParameter,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooMany,
    Unauthorized,
)
from ..store.ledger import StoreError, now_ms
from .i18n import LANGUAGES, Texts, load_catalogs, negotiate

SESSION_COOKIE = "aidmesh_session"
CSRF_COOKIE = "aidmesh_csrf"  # double-submit token for forms shown before sign-in
LANG_COOKIE = "aidmesh_lang"
TOUCH_AFTER_MS = 10 * 60 * 1000
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; object-src 'none'")


@dataclass
class WebState:
    catalogs: dict[str, Any]
    signins: people.SignInLimiter = field(default_factory=people.SignInLimiter)
    streams: set[Any] = field(default_factory=set)  # open /live responses
    stopping: bool = False


WEB = web.AppKey("web", WebState)


@dataclass
class Viewer:
    """Who asks, what they may do, and in which language; one per request."""

    person: people.Person | None
    session: people.Session | None
    texts: Texts
    csrf: str
    new_csrf_cookie: bool = False

    def can(self, role: str) -> bool:
        return self.person is not None and self.person.allows(role)


Form = MultiDictProxy[str]
Handler = Callable[[web.Request, Viewer, Form], Awaitable[web.StreamResponse]]


def setup(app: web.Application) -> None:
    app[WEB] = WebState(catalogs=load_catalogs())
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("node.web", "templates"),
        extensions=["jinja2.ext.i18n"], autoescape=True, trim_blocks=True,
        lstrip_blocks=True)
    env.install_null_translations()  # replaced per render by the viewer's language


def secure(request: web.Request) -> bool:
    return request.secure or request.app[NODE].config.public_url.startswith("https://")


async def viewer_of(request: web.Request) -> Viewer:
    node = request.app[NODE]
    token = request.cookies.get(SESSION_COOKIE, "")
    session = None
    if token:
        now = now_ms()
        session = await node.store.read(lambda c: people.session(c, token, now))
        if session is not None and now - session.last_seen > TOUCH_AFTER_MS:
            await node.store.write(lambda c: people.touch_session(c, session.id, now))
    person = session.person if session else None
    chosen = person.language if person and person.language else request.cookies.get(LANG_COOKIE)
    lang = negotiate(chosen, request.headers.get("Accept-Language", ""))
    texts = Texts(lang, request.app[WEB].catalogs[lang])
    if session is not None:
        return Viewer(person, session, texts, session.csrf)
    csrf = request.cookies.get(CSRF_COOKIE, "")
    if len(csrf) != 43:
        return Viewer(None, None, texts, secrets.token_urlsafe(32), new_csrf_cookie=True)
    return Viewer(None, None, texts, csrf)


def page(role: str | None = "reader") -> Callable[[Handler], Callable[..., Any]]:
    """A web page handler: signs the viewer in (or sends them to sign in), checks the
    role and, on POST, the form's CSRF token before the handler sees the form."""

    def wrap(handler: Handler) -> Callable[..., Any]:
        @require(None)  # the API's token check does not apply: pages use sessions
        async def run(request: web.Request) -> web.StreamResponse:
            viewer = await viewer_of(request)
            if role is not None and viewer.person is None:
                target = quote(request.path_qs if request.method == "GET" else "/", safe="")
                raise web.HTTPSeeOther(f"/signin?next={target}")
            if role is not None and not viewer.can(role):
                return render(request, viewer, "error.html", {
                    "title": viewer.texts.gettext("Not allowed"),
                    "message": viewer.texts.gettext(
                        "Your account cannot do this. Ask an admin of your group if you "
                        "need to.")}, status=403)
            form: Form = MultiDictProxy(request.query.copy()) if request.method == "GET" \
                else await request.post()  # type: ignore[assignment]
            if request.method == "POST":
                sent = form.get("csrf", "")
                if not isinstance(sent, str) or not hmac.compare_digest(
                        sent.encode(), viewer.csrf.encode()):
                    return render(request, viewer, "error.html", {
                        "title": viewer.texts.gettext("This form has expired"),
                        "message": viewer.texts.gettext(
                            "Go back, reload the page and send the form again.")},
                        status=403)
            try:
                response = await handler(request, viewer, form)
            except web.HTTPNotFound:
                response = not_found(request, viewer)
            except (ServiceError, StoreError, ProtocolError) as exc:
                # A refusal the page did not place next to a field: still words, never a 500.
                response = render(request, viewer, "error.html", {
                    "title": viewer.texts.gettext("This did not work"),
                    "message": explain(exc, viewer.texts)}, status=_status(exc))
            if viewer.new_csrf_cookie:
                response.set_cookie(CSRF_COOKIE, viewer.csrf, httponly=True,
                                    samesite="Strict", secure=secure(request), path="/")
            return response

        run.inner = handler  # type: ignore[attr-defined]  # another page may render this one
        return run

    return wrap


def not_found(request: web.Request, viewer: Viewer) -> web.Response:
    _ = viewer.texts.gettext
    return render(request, viewer, "error.html", {
        "title": _("Page not found"),
        "message": _("There is nothing at this address. Go to Today to start again.")},
        status=404)


def render(request: web.Request, viewer: Viewer, template: str,
           context: Mapping[str, Any], status: int = 200) -> web.Response:
    texts = viewer.texts
    base = {"viewer": viewer, "person": viewer.person, "csrf": viewer.csrf, "t": texts,
            "lang": texts.lang, "dir": texts.direction, "languages": LANGUAGES,
            "path": request.path, "gettext": texts.gettext, "_": texts.gettext,
            "ngettext": texts.ngettext, "node_name": request.app[NODE].config.name}
    if "names" in context:
        names, me = context["names"], context["me"]
        ours, other = texts.gettext("our group"), texts.gettext("another group")
        base["who"] = lambda author: ours if author == me else names.get(author) or other
    response = aiohttp_jinja2.render_template(template, request, {**base, **context},
                                              status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(location: str) -> web.HTTPSeeOther:
    """After a successful POST: the next page is a GET, so reloading does not repeat it."""
    return web.HTTPSeeOther(location)


def field_errors(exc: ServiceError, texts: Texts, names: Mapping[str, str]
                 ) -> dict[str, str]:
    """A service refusal as {form field: message}; unknown fields go under ''."""
    field_name = names.get(exc.field or "", "")
    return {field_name: explain(exc, texts)}


def _status(exc: Exception) -> int:
    statuses = {Invalid: 422, BadParameter: 400, NotFound: 404, Forbidden: 403,
                Unauthorized: 401, TooMany: 429}
    return next((code for kind, code in statuses.items() if isinstance(exc, kind)),
                422 if isinstance(exc, ProtocolError) else 409)


def explain(exc: ServiceError | StoreError | ProtocolError, texts: Texts) -> str:
    """A refusal in the viewer's language where we know the case, else its own words."""
    _ = texts.gettext
    known = {
        "unknown-category": _("We do not know this category. Pick one from the list."),
        "unknown-unit": _("We do not know this unit. Pick one from the list."),
        "unit-mismatch": _("The offer and the need are counted in units that do not "
                           "convert into each other, like kilograms and boxes."),
        "in-the-past": _("This time has already passed. Choose a later one."),
        "not-enough": _("There is not that much left. Ask for less."),
        "nothing-available": _("Nothing is left of it to give."),
        "withdrawn": _("This was withdrawn and cannot change any more."),
        "expired": _("This has expired."),
        "not-pending": _("Someone already answered this claim. Reload the page."),
        "no-seal-key": _("That group cannot receive private details yet. Try again in a "
                         "few minutes, or leave the private details empty."),
        "wrong-credentials": _("The name or password is wrong. Check them and try again."),
        "too-many-attempts": _("Too many attempts. Wait a few minutes and try again."),
        "invite-unknown": _("This link was used, has expired or is mistyped. Ask your "
                            "admin for a new one."),
        "name-taken": _("Someone already uses this name. Choose another one."),
    }
    return known.get(getattr(exc, "code", ""), exc.detail)


def with_security_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")  # invite links stay on this node
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", "geolocation=(self), camera=(), microphone=()")


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """Strict CSP and friends on every page the web app serves (not the JSON API)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith(("/api/", "/federation/")):
            with_security_headers(exc)
        raise
    if not request.path.startswith(("/api/", "/federation/")):
        with_security_headers(response)
    return response


def session_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax",
                        secure=secure(request), path="/", max_age=90 * 24 * 3600)


async def append_as(request: web.Request, viewer: Viewer, fn: Callable[..., Any]) -> Any:
    """Run a service action that appends to this node's log, recording who did it."""
    node = request.app[NODE]
    act = people.acting(viewer.person, fn)
    result = await node.store.write(lambda c: act(node.store.ledger, c))
    node.metrics.entries.labels("local").inc()
    return result
