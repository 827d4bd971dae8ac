"""RFC 9457 problem details: every client or peer error is one of these, never a trace.

The one place where the service layer's typed errors, protocol errors and store refusals
become HTTP statuses.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from protocol import ProtocolError

from ..services.errors import (
    BadParameter,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooMany,
    Unauthorized,
)
from ..store.ledger import StoreError

_FIELD_RE = re.compile(r"field '([^']+)'")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 pchar and "/": what may stay as sent in a URI reference's path.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
PROBLEM_TYPE = "urn:aidmesh:problem:"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Invalid content",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}
STATUS: dict[type[ServiceError], int] = {
    BadParameter: 400, Forbidden: 403, NotFound: 404, Conflict: 409, Invalid: 422,
    Unauthorized: 401, TooMany: 429,
}


class Problem(Exception):
    """Raise from a handler; the middleware renders it as application/problem+json."""

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = headers or {}
        self.code = code
        self.detail = detail
        self.field = field
        self.extra = extra

    def as_dict(self, instance: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PROBLEM_TYPE + self.code,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.field:
            out["field"] = self.field
        out.update(self.extra)
        return out


def from_error(exc: Exception) -> Problem | None:
    """The problem for a refusal raised below the HTTP layer; None for anything else."""
    if isinstance(exc, ServiceError):
        headers = ({"Retry-After": str(exc.extra.get("retry_after", 1))}
                   if isinstance(exc, TooMany) else None)
        return Problem(STATUS[type(exc)], exc.code, exc.detail, field=exc.field,
                       headers=headers, **exc.extra)
    if isinstance(exc, ProtocolError):
        # Fields are named as the client sent them (an update's sit under 'set').
        m = _FIELD_RE.search(exc.detail)
        field = m.group(1).removeprefix("set.") if m else None
        return Problem(422, exc.code, exc.detail, field=field)
    if isinstance(exc, StoreError):
        return Problem(409, exc.code, exc.detail)
    return None


def instance_of(request: web.Request) -> str:
    """The problem's ``instance``: the request path as sent (percent-encoded, no query).

    Not ``request.path``: that is decoded, and a decoded path (say with a C1 control in it)
    is no URI reference. Whatever still is not one (a raw byte, a stray '%') is escaped.
    """
    raw = request.raw_path.partition("?")[0].partition("#")[0]
    return quote(_LONE_PERCENT.sub("%25", raw), safe=_PATH_SAFE, errors="surrogateescape")


def problem_response(problem: Problem, instance: str, request_id: str = "") -> web.Response:
    body = problem.as_dict(instance)
    if request_id:
        body["request_id"] = request_id
    headers = dict(problem.headers)
    headers.pop("Content-Type", None)
    return web.Response(status=problem.status, text=json.dumps(body),
                        content_type="application/problem+json", headers=headers)


def from_http_exception(exc: web.HTTPException) -> Problem:
    """Map aiohttp's own errors (404 route, 405, 413 body) to problems."""
    status = exc.status
    code = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
        status, f"http-{status}")
    detail = {
        404: "no such resource; see /api/v1/openapi.json for the routes",
        405: "this resource does not support that method",
        413: "request body is larger than the limit",
    }.get(status, exc.reason or "request failed")
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return Problem(status, code, detail, headers=headers)
