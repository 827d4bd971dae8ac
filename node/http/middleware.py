"""Request context and authentication, applied to every client API request."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

from aiohttp import web

from ..runtime import NODE, PRINCIPAL, REQUEST_ID, Node
from ..services.tokens import ANONYMOUS_READER, Principal
from .problems import Problem, from_error, from_http_exception, instance_of, problem_response
from .request import PREFIX

log = logging.getLogger("aidmesh")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Request id, structured access log, metrics, and problem+json for every error."""
    node = request.app[NODE]
    rid = request.headers.get("X-Request-Id", "")
    if not _REQUEST_ID_RE.match(rid):
        rid = secrets.token_hex(8)
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource \
        else "unmatched"
    try:
        response = await handler(request)
    except Problem as problem:
        response = problem_response(problem, instance_of(request), rid)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem_response(from_http_exception(exc), instance_of(request), rid)
    except Exception as exc:
        problem = from_error(exc)
        if problem is None:
            log.exception(json.dumps({"event": "error", "request_id": rid,
                                      "path": request.path}))
            problem = Problem(500, "internal", "the node hit an unexpected error; the "
                              f"operator can find request id {rid} in its log")
        response = problem_response(problem, instance_of(request), rid)
    response.headers["X-Request-Id"] = rid
    elapsed = time.perf_counter() - started
    node.metrics.requests.labels(request.method, route, str(response.status)).inc()
    node.metrics.latency.labels(route).observe(elapsed)
    log.info(json.dumps({"event": "request", "request_id": rid, "method": request.method,
                         "path": request.path, "status": response.status,
                         "ms": round(elapsed * 1000, 2)}))
    return response


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    """Bearer tokens by role; decided before the handler does any work."""
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404/405 problems, not a demand for a token
    role = getattr(request.match_info.handler, "required_role", "admin")
    if role is None:
        return await handler(request)
    node = request.app[NODE]
    principal = await principal_of(request, node)
    if principal is None:
        raise Problem(401, "unauthorized", "send 'Authorization: Bearer <token>'; create a "
                      "token with 'aidmesh token create --role reader'",
                      headers={"WWW-Authenticate": 'Bearer realm="aidmesh"'})
    if not principal.allows(role):
        raise Problem(403, "forbidden", f"this needs the {role} role; the token has "
                      f"{principal.role}")
    request[PRINCIPAL] = principal
    return await handler(request)


# What `open_read` opens to clients without a token, as the README says: offers, needs
# and the vocabularies (categories, units). Peers, claims, matches, logs, forks, events
# and node info always need a token.
OPEN_READ_ROUTES = frozenset({
    f"{PREFIX}/offers", f"{PREFIX}/offers/{{id}}", f"{PREFIX}/needs", f"{PREFIX}/needs/{{id}}",
    f"{PREFIX}/categories", f"{PREFIX}/units",
})


def _open_route(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in OPEN_READ_ROUTES


async def principal_of(request: web.Request, node: Node) -> Principal | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await node.tokens.lookup(token.strip(), node.store)
    if node.config.open_read and request.method in ("GET", "HEAD") and _open_route(request):
        return ANONYMOUS_READER
    return None
