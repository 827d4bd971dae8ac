"""The web app's routes, registered by node/app.py after the API's."""

from __future__ import annotations

from aiohttp import web

from . import admin, areas, claims, listings, live, people, sheets
from .views import security_headers, setup

__all__ = ["add_routes", "security_headers"]


def add_routes(app: web.Application) -> None:
    setup(app)
    for module in (listings, claims, people, areas, admin, sheets, live):
        module.add_routes(app)


def add_fallback(app: web.Application) -> None:
    live.add_fallback(app)
