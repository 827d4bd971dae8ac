"""What the admin pages share: their render with helpers, sizes, a peer's error in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .views import Viewer, render


def size(texts: Any, count: int | None) -> str:
    """Bytes as people read them: 1.2 MB, 640 KB."""
    if count is None:
        return ""
    value, unit = float(count), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    shown = str(int(value)) if unit == "B" or value >= 100 else texts.number(
        f"{value:.1f}")
    return f"{shown} {unit}"


def admin_page(request: web.Request, viewer: Viewer, template: str,
               context: Mapping[str, Any], status: int = 200) -> web.Response:
    """Render an admin page with the helpers their templates share."""
    return render(request, viewer, template, {
        "size": lambda n: size(viewer.texts, n), **context}, status=status)


def peer_error(texts: Any, error: str | None) -> str:
    """What a peer's last sync error means and what to do, from the gossip loop's text."""
    if not error:
        return ""
    _ = texts.gettext
    text = error.lower()
    cases = (
        (("http 403",), _("The peer does not trust this node yet. Ask its admin to add "
                          "this node, or send them an invite code.")),
        (("http 401",), _("The peer refused this node's signature. Check that the clock "
                          "of both machines is right.")),
        (("http 429",), _("The peer is busy and asked this node to slow down. It will "
                          "catch up by itself.")),
        (("http 5",), _("The peer had an error of its own. Tell its admin if it lasts.")),
        (("http 404", "http 3"), _("Something else answers at this address, not an "
                                   "aidmesh node. Check the peer's address.")),
        (("timed out", "timeout"), _("The peer did not answer in time. It may be off or "
                                     "very slow; this node keeps trying.")),
        (("refused", "cannot connect", "connector", "name or service", "unreachable",
          "nodename"), _("This node cannot reach the peer's address. Check the address "
                         "and that the peer is running; this node keeps trying.")),
        (("rejected",), _("The peer sent entries that do not check out; they were "
                          "refused. Tell its admin.")),
    )
    for needles, words in cases:
        if any(n in text for n in needles):
            return words
    return _("The last sync failed. This node keeps trying; the details below say why.")
