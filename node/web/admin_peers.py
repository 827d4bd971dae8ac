"""Peers and the coalition (admins): each peer's sync in words, "sync now", remove;
invite codes to make and to paste; the groups replicated within `hops` and the blocked.

Invite codes are services/peer_invites.py; the signed handshake of a pasted code runs in
the Node's `peering` object, as the CLI and API do. Sync now wakes the peer's gossip task
(`Node.gossip.poke`), as a notify from that peer would.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocol import ProtocolError, parse_node_id

from ..runtime import NODE, Node
from ..services import coalition, overview, peer_invites, peers
from ..services.errors import ServiceError
from ..store.ledger import StoreError, now_ms
from .admin_common import admin_page, peer_error
from .views import Form, Viewer, append_as, explain, page, redirect, render


def _peer_rows(node: Node, conn: Any) -> dict[str, Any]:
    rows = peers.rows(conn, node.identity.public, node.config.hops)
    return {"rows": rows, "names": overview.group_names(conn),
            "invites": peer_invites.open_invites(conn, now_ms())}


async def _page(request: web.Request, viewer: Viewer, *, notice: str = "",
                made: Any = None, values: Form | dict | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    node = request.app[NODE]
    found = await node.store.read(lambda c: _peer_rows(node, c))
    shown = []
    for row in found["rows"]:
        link = node.gossip.links.get(parse_node_id(row["id"])) if node.gossip else None
        peer = {**row, **(link.as_json() if link is not None else {})}
        peer["name"] = found["names"].get(row["id"])
        peer["failing"] = peers.error_is_current(peer)
        peer["words"] = peer_error(viewer.texts, peer["last_error"])
        shown.append(peer)
    done = {"synced": viewer.texts.gettext("Sync started. Reload in a moment to see it."),
            "removed": viewer.texts.gettext("The peer was removed."),
            "revoked": viewer.texts.gettext("The invite code no longer works.")}
    return admin_page(request, viewer, "admin_peers.html", {
        "peers": shown, "invites": found["invites"], "made": made,
        "values": values or {}, "errors": errors or {},
        "notice": notice or done.get(request.query.get("done", ""), ""),
        "title": viewer.texts.gettext("Peers")}, status=status)


@page("admin")
async def peers_page(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    return await _page(request, viewer)


def _peer_id(request: web.Request) -> bytes:
    try:
        return parse_node_id(request.match_info["id"])
    except ProtocolError:
        raise web.HTTPNotFound() from None


@page("admin")
async def sync_now(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    peer = _peer_id(request)
    if node.gossip is None or peer not in node.gossip.links:
        raise web.HTTPNotFound()
    node.gossip.poke(peer)
    raise redirect("/admin/peers?done=synced")


@page("admin")
async def remove(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    _peer_id(request)
    try:
        await append_as(request, viewer, lambda ledger, c: peers.remove(
            ledger, c, request.match_info["id"]))
    except ServiceError:
        raise web.HTTPNotFound() from None
    except StoreError as exc:  # our own log is forked: it cannot take an untrust entry
        return await _page(request, viewer, status=409, errors={"invite": str(exc)})
    await node.gossip.refresh()
    raise redirect("/admin/peers?done=removed")


@page("admin")
async def make_invite(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
    node = request.app[NODE]
    try:
        made = await node.store.write(lambda c: peer_invites.create(
            c, node.store.ledger, node.config, now_ms()))
    except ServiceError as exc:
        return await _page(request, viewer, status=422,
                           errors={"invite": explain(exc, viewer.texts)})
    return await _page(request, viewer, made=made)


@page("admin")
async def revoke_invite(request: web.Request, viewer: Viewer, form: Form
                        ) -> web.StreamResponse:
    node = request.app[NODE]
    try:
        await node.store.write(lambda c: peer_invites.revoke(c, request.match_info["id"]))
    except ServiceError:
        raise web.HTTPNotFound() from None
    raise redirect("/admin/peers?done=revoked")


@page("admin")
async def join(request: web.Request, viewer: Viewer, form: Form) -> web.StreamResponse:
    node = request.app[NODE]
    code = form.get("code", "").strip()
    try:
        joined = await node.peering.join(code)
    except ServiceError as exc:
        return await _page(request, viewer, values={"code": code}, status=422,
                           errors={"code": explain(exc, viewer.texts)})
    name = joined.get("name") or joined.get("id", "")
    return await _page(request, viewer, notice=viewer.texts.gettext(
        "This node and {name} now trust each other and start syncing.").format(name=name))


@page("admin")
async def coalition_page(request: web.Request, viewer: Viewer, form: Form
                         ) -> web.StreamResponse:
    node = request.app[NODE]
    found = await node.store.read(lambda c: coalition.members(
        c, node.identity.public, node.config.hops))
    return admin_page(request, viewer, "admin_coalition.html", {
        **found, "title": viewer.texts.gettext("The coalition")})


@page(None)
async def invite_link(request: web.Request, viewer: Viewer, form: Form
                      ) -> web.StreamResponse:
    """Where an invite link leads: the inviting node. It says how to use the code (on the
    other group's own node), so following the link is never a dead end."""
    return render(request, viewer, "peer_invite.html", {
        "code": form.get("code", "")[:2500],
        "title": viewer.texts.gettext("An invitation to peer")})


def add_routes(app: web.Application) -> None:
    app.add_routes([
        web.get(peer_invites.LINK_PATH, invite_link),
        web.get("/admin/peers", peers_page),
        web.post("/admin/peers/invite", make_invite),
        web.post("/admin/peers/join", join),
        web.post("/admin/peers/invites/{id}/revoke", revoke_invite),
        web.post("/admin/peers/{id}/sync", sync_now),
        web.post("/admin/peers/{id}/remove", remove),
        web.get("/admin/coalition", coalition_page),
    ])
