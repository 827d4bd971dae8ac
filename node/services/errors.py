"""Typed refusals of the service layer.

A service never knows whether HTTP, the web app or the CLI called it: it raises one of
these, and each interface renders them in one place (http/problems.py maps the class to a
status, the CLI prints ``detail``). ``code`` is the stable problem type; ``detail`` says
what to do next; ``field`` names the input at fault.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base class; never raised itself."""

    def __init__(self, code: str, detail: str, *, field: str | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field
        self.extra = extra


class Invalid(ServiceError):
    """The content of the request is wrong (a field, a body)."""


class BadParameter(ServiceError):
    """A query parameter or filter is wrong."""


class NotFound(ServiceError):
    """The thing named does not exist on this node (or is not visible to the caller)."""


class Forbidden(ServiceError):
    """The caller (or this node) may not do this to that thing."""


class Conflict(ServiceError):
    """The thing is in a state that does not allow this now."""


class Unauthorized(ServiceError):
    """Who the caller is could not be established (wrong password, unknown session)."""


class TooMany(ServiceError):
    """Too many attempts in a short time; ``extra['retry_after']`` says how many seconds
    until the next one may succeed."""
