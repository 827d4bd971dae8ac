"""Opaque page cursors handed to clients: base64url of a small JSON array."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..state.query import QueryError, load_cursor
from .errors import BadParameter


def encode_cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, shape: tuple[type, ...]) -> list[Any]:
    """A cursor of ``shape`` (ints within +-2^53, strings) or a 400 invalid-parameter."""
    try:
        return load_cursor(text, shape)
    except QueryError as exc:
        raise BadParameter("invalid-parameter", exc.detail, field="cursor") from None
