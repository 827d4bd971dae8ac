"""Opaque page cursors handed to clients: base64url of a small JSON array."""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import BadParameter


def encode_cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, shape: tuple[type, ...]) -> list[Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(value, list) or len(value) != len(shape) or not all(
                isinstance(v, t) and not isinstance(v, bool) for v, t in zip(value, shape,
                                                                             strict=True)):
            raise ValueError
    except (ValueError, TypeError):
        raise BadParameter("invalid-parameter", "cursor is not one this node handed out; "
                           "start without it", field="cursor") from None
    return value
