"""RFC 9457 problem details: every client or peer error is one of these, never a trace."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "urn:aidmesh:problem:"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Invalid content",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
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


def json_object(body: Any, allowed: Iterable[str], required: Iterable[str] = ()
                ) -> dict[str, Any]:
    """A JSON object with only ``allowed`` fields, none null, and every ``required`` one."""
    if not isinstance(body, dict):
        raise Problem(422, "invalid-body", "the body must be a JSON object")
    allowed = sorted(allowed)
    for key, value in body.items():
        if key not in allowed:
            raise Problem(422, "unknown-field", f"unknown field {key!r}; allowed: "
                          f"{', '.join(allowed)}", field=key)
        if value is None:
            raise Problem(422, "invalid-field", f"{key} must not be null (omit it instead)",
                          field=key)
    for key in required:
        if key not in body:
            raise Problem(422, "invalid-field", f"{key} is required", field=key)
    return body
