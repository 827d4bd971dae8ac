"""A plain HTTP "browser" for the web app's server-side tests (the real browser is in
tests/test_web_browser.py): keeps cookies, finds CSRF tokens and field errors in pages."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import aiohttp

from node.services import people
from node.store.ledger import now_ms

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_FIELD_ERROR = re.compile(r'<p class="error" id="([\w-]+)-error">([^<]*)</p>')
_VALUE = re.compile(r'<input id="f-([\w-]+)" name="[\w-]+" type="[\w-]+" value="([^"]*)"')
PASSWORD = "a long enough passphrase"


@dataclass
class Page:
    status: int
    text: str
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found, f"no form with a CSRF token on this page ({self.status})"
        return found.group(1)

    def errors(self) -> dict[str, str]:
        """Field name -> the error shown next to it."""
        return {m.group(1): html.unescape(m.group(2)) for m in _FIELD_ERROR.finditer(self.text)}

    def values(self) -> dict[str, str]:
        """Text inputs -> the value the page shows in them (what the person typed)."""
        return {m.group(1): html.unescape(m.group(2)) for m in _VALUE.finditer(self.text)}


class WebClient:
    """One person's browser: its own cookie jar (cookies of 127.0.0.1 kept)."""

    def __init__(self, base: str, language: str = "en") -> None:
        self.base = base.rstrip("/")
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"Accept-Language": language})
        self.last: Page | None = None

    async def _page(self, response: aiohttp.ClientResponse) -> Page:
        page = Page(response.status, await response.text(), response.headers.get("Location"),
                    dict(response.headers))
        self.last = page
        return page

    async def get(self, path: str) -> Page:
        async with self.session.get(self.base + path, allow_redirects=False) as r:
            return await self._page(r)

    async def post(self, path: str, data: dict[str, str], *, csrf: str | None = None,
                   form_page: str | None = None) -> Page:
        """Send a form; its CSRF token comes from ``form_page`` (fetched first) unless
        given (use csrf="" to send none)."""
        if csrf is None:
            csrf = (await self.get(form_page or path)).csrf
        body = {**data, "csrf": csrf} if csrf else dict(data)
        async with self.session.post(self.base + path, data=body,
                                     allow_redirects=False) as r:
            return await self._page(r)

    async def sign_in(self, name: str, password: str = PASSWORD) -> Page:
        page = await self.post("/signin", {"name": name, "password": password})
        assert page.status == 303, (page.status, page.errors())
        return page

    async def close(self) -> None:
        await self.session.close()


def add_person(home, role: str, name: str, password: str = PASSWORD) -> people.Person:
    """A person made the way an invite link makes one, straight on the data dir."""
    ledger = home.ledger()
    try:
        def make(c):
            token = people.setup_token(c, now_ms()) if role == "admin" else None
            token = token or people.create_invite(c, role, None, now_ms())
            return people.accept_invite(c, token, name, password, now_ms())
        return ledger.transaction(make)
    finally:
        ledger.close()
