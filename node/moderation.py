"""Withdraw-and-erase, local moderation, blocks, and retention of expired payloads.

Erasing keeps the header: the log still verifies (spec §9.3 `redact`). An author's
`redact` travels to every honest node; a moderator's hide or erase is this node's own
decision and is never replicated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

from aiohttp import web

from protocol import ProtocolError, parse_entry_id, parse_node_id

from . import store as st
from .api import PREFIX, json_response, protocol_problem, read_json
from .app import NODE, Node, require
from .listing import rfc3339
from .problems import Problem, json_object
from .projection import _listing_event, erase_payload

log = logging.getLogger("aidmesh.moderation")
RETENTION_SWEEP_S = 3600.0


def _fields(body: Any, allowed: dict[str, bool]) -> dict[str, Any]:
    """Check a JSON object against {field: required}, and its optional reason."""
    body = json_object(body, allowed, [k for k, required in allowed.items() if required])
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise Problem(422, "invalid-field", "reason is a string of at most 500 characters",
                      field="reason")
    return body


# -- an author erases its own listing --------------------------------------------------------


def redact_routes(kind: str) -> list[web.RouteDef]:
    @require("coordinator")
    async def redact(request: web.Request) -> web.Response:
        """Withdraw (if still open) and ask every node to erase the payload."""
        node: Node = request.app[NODE]
        entry_id = request.match_info["id"]
        try:
            target = parse_entry_id(entry_id)
        except ProtocolError as exc:
            raise Problem(404, "not-found", exc.detail, field="id") from None
        body = _fields(await read_json(request), {"reason": False}) if request.can_read_body \
            else {}
        reason = body.get("reason", "")

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT author, withdrawn FROM listings WHERE id = ? AND kind = ?",
                               (entry_id, kind)).fetchone()
            if row is None:
                raise Problem(404, "not-found", f"no {kind} with id {entry_id} on this node")
            if row["author"] != node.identity.node_id:
                raise Problem(403, "not-origin", f"only the origin node can erase this {kind}; "
                              "an admin can hide or erase it locally with /api/v1/moderation")
            ledger = node.store.ledger
            if not row["withdrawn"]:
                ledger.append_local(conn, "withdraw", {"target": target, "reason": reason})
            ledger.append_local(conn, "redact", {"target": target, "reason": reason})

        try:
            await node.store.write(write)
        except ProtocolError as exc:
            raise protocol_problem(exc) from None
        except st.StoreError as exc:
            raise Problem(409, exc.code, exc.detail) from None
        return web.Response(status=204)

    return [web.post(f"{PREFIX}/{kind}s/{{id}}/redact", redact)]


# -- blocks -----------------------------------------------------------------------------------


@require("admin")
async def add_block(request: web.Request) -> web.Response:
    node: Node = request.app[NODE]
    body = _fields(await read_json(request), {"author": True, "reason": False})
    try:
        author = parse_node_id(body["author"])
    except ProtocolError as exc:
        raise Problem(422, "invalid-field", exc.detail, field="author") from None
    if author == node.identity.public:
        raise Problem(422, "invalid-field", "a node cannot block itself", field="author")
    now = st.now_ms()

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO blocks (author, reason, created) VALUES (?, ?, ?) "
                     "ON CONFLICT (author) DO UPDATE SET reason = excluded.reason",
                     (body["author"], body.get("reason", ""), now))
        # Its listings leave listings and matches at once (the queries filter blocks).
        for row in conn.execute("SELECT id FROM listings WHERE author = ?", (body["author"],)):
            _listing_event(conn, row["id"], "blocked")

    await node.store.write(write)
    node.store.version += 1  # the served state (heads in scope) changed
    node.gossip.resync()
    return json_response({"author": body["author"], "reason": body.get("reason", ""),
                          "created": rfc3339(now)}, status=201)


@require("admin")
async def list_blocks(request: web.Request) -> web.Response:
    node: Node = request.app[NODE]
    rows = await node.store.read(
        lambda c: c.execute("SELECT author, reason, created FROM blocks ORDER BY created")
        .fetchall())
    return json_response({"blocks": [{"author": r["author"], "reason": r["reason"],
                                      "created": rfc3339(r["created"])} for r in rows]})


@require("admin")
async def remove_block(request: web.Request) -> web.Response:
    node: Node = request.app[NODE]
    author = request.match_info["author"]
    done = await node.store.write(
        lambda c: c.execute("DELETE FROM blocks WHERE author = ?", (author,)).rowcount)
    if not done:
        raise Problem(404, "not-found", f"{author[:80]} is not blocked")
    node.store.version += 1
    node.gossip.resync()
    return web.Response(status=204)


# -- local moderation of any entry --------------------------------------------------------------


@require("admin")
async def moderate(request: web.Request) -> web.Response:
    node: Node = request.app[NODE]
    body = _fields(await read_json(request), {"id": True, "action": True, "reason": False})
    try:
        target = parse_entry_id(body["id"])
    except ProtocolError as exc:
        raise Problem(422, "invalid-field", exc.detail, field="id") from None
    if body["action"] not in ("hide", "erase"):
        raise Problem(422, "invalid-field", "action is 'hide' (reversible) or 'erase' "
                      "(drops the payload here for good)", field="action")
    now = st.now_ms()

    def write(conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT author FROM entries WHERE id = ?", (target,)).fetchone()
        if row is None:
            raise Problem(404, "not-found", f"no entry {body['id']} on this node")
        conn.execute("INSERT INTO moderation (id, action, reason, created) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (id) DO UPDATE SET action = excluded.action, "
                     "reason = excluded.reason", (body["id"], body["action"],
                                                  body.get("reason", ""), now))
        if body["action"] == "hide":
            conn.execute("UPDATE listings SET hidden = 1 WHERE id = ?", (body["id"],))
            _listing_event(conn, body["id"], "hidden")
        else:
            erase_payload(conn, target, row["author"])

    await node.store.write(write)
    return json_response({"id": body["id"], "action": body["action"],
                          "reason": body.get("reason", ""), "created": rfc3339(now)},
                         status=201)


@require("admin")
async def list_moderation(request: web.Request) -> web.Response:
    node: Node = request.app[NODE]
    rows = await node.store.read(lambda c: c.execute(
        "SELECT id, action, reason, created FROM moderation ORDER BY created").fetchall())
    return json_response({"moderation": [{**dict(r), "created": rfc3339(r["created"])}
                                         for r in rows]})


@require("admin")
async def unhide(request: web.Request) -> web.Response:
    node: Node = request.app[NODE]
    entry_id = request.match_info["id"]

    def write(conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT action FROM moderation WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise Problem(404, "not-found", f"no moderation of {entry_id[:80]}")
        if row["action"] == "erase":
            raise Problem(409, "erased", "an erased payload cannot come back on this node")
        conn.execute("DELETE FROM moderation WHERE id = ?", (entry_id,))
        conn.execute("UPDATE listings SET hidden = 0 WHERE id = ?", (entry_id,))

    await node.store.write(write)
    return web.Response(status=204)


# -- retention ------------------------------------------------------------------------------------


def erase_expired(conn: sqlite3.Connection, retention_days: int, now: int) -> int:
    """Erase payloads of listings expired more than retention_days ago (locally)."""
    cutoff = now - retention_days * 86_400_000
    rows = conn.execute("SELECT id, author FROM listings WHERE available_until < ?",
                        (cutoff,)).fetchall()
    for row in rows:
        erase_payload(conn, bytes.fromhex(row["id"]), parse_node_id(row["author"]))
    return len(rows)


class Retention:
    """Hourly sweep that erases long-expired payloads; headers stay, logs still verify."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="aidmesh-retention")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> int:
        days = self.node.config.retention_days
        count = await self.node.store.write(lambda c: erase_expired(c, days, st.now_ms()))
        if count:
            log.info(json.dumps({"event": "retention", "erased": count}))
        return count

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - a failed sweep is retried next hour
                log.exception("retention sweep failed")
            await asyncio.sleep(RETENTION_SWEEP_S)


def add_routes(app: web.Application) -> None:
    app.add_routes([
        *redact_routes("offer"),
        *redact_routes("need"),
        web.post(f"{PREFIX}/blocks", add_block),
        web.get(f"{PREFIX}/blocks", list_blocks),
        web.delete(f"{PREFIX}/blocks/{{author}}", remove_block),
        web.post(f"{PREFIX}/moderation", moderate),
        web.get(f"{PREFIX}/moderation", list_moderation),
        web.delete(f"{PREFIX}/moderation/{{id}}", unhide),
    ])
