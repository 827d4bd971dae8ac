"""The one byte form: canonical msgpack.

Signatures and hashes cover exact bytes, so two encoders must never disagree. Decoding
therefore rejects every input that is not the unique canonical encoding of its value,
and verification always runs on the bytes received, never on a re-encoding.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import EncodingError

MAX_DEPTH = 32
MAX_CONTAINER_LEN = 10_000


def _canon(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH} levels", code="too-deep")
    if isinstance(value, dict):
        if len(value) > MAX_CONTAINER_LEN:
            raise EncodingError(f"map longer than {MAX_CONTAINER_LEN}", code="too-long")
        for key in value:
            if not isinstance(key, str):
                raise EncodingError("map keys must be strings", code="bad-map-key")
        return {k: _canon(value[k], depth + 1) for k in sorted(value, key=_key_order)}
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_CONTAINER_LEN:
            raise EncodingError(f"array longer than {MAX_CONTAINER_LEN}", code="too-long")
        return [_canon(v, depth + 1) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise EncodingError("integer out of the 64-bit range", code="malformed")
        return value
    if isinstance(value, float):
        raise EncodingError("floats are not allowed; use integers or decimal strings",
                            code="float")
    raise EncodingError(f"cannot encode a {type(value).__name__}", code="malformed")


def _key_order(key: str) -> bytes:
    return key.encode("utf-8")


def encode(value: Any) -> bytes:
    """Encode to canonical msgpack: sorted string keys, smallest forms, bin for bytes."""
    return msgpack.packb(_canon(value, 1), use_bin_type=True)


def _reject_ext(code: int, data: bytes) -> Any:
    raise EncodingError(f"msgpack ext type {code} is not allowed", code="ext-type")


def decode(data: bytes, *, max_size: int | None = None) -> Any:
    """Decode canonical msgpack, rejecting any other encoding of the same value."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodingError("expected bytes", code="malformed")
    data = bytes(data)
    if max_size is not None and len(data) > max_size:
        raise EncodingError(f"{len(data)} bytes exceeds the limit of {max_size}",
                            code="too-large")
    if not data:
        raise EncodingError("empty input", code="malformed")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_reject_ext,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
            max_ext_len=0,
        )
    except EncodingError:
        raise
    except msgpack.ExtraData:
        raise EncodingError("trailing bytes after the value", code="trailing-bytes") from None
    except UnicodeDecodeError:
        raise EncodingError("string is not valid UTF-8", code="malformed") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        reason = str(exc) or type(exc).__name__
        code = "malformed"
        if "max_ext_len" in reason:
            code = "ext-type"
        elif "max_array_len" in reason or "max_map_len" in reason:
            code = "too-long"
        elif "map key" in reason:
            code = "bad-map-key"
        raise EncodingError(f"not valid msgpack ({reason})", code=code) from None
    _check_decoded(value, 1)
    # With keys already in order, msgpack re-encodes the decoded value in smallest forms:
    # any difference means the input used another form of the same value.
    if msgpack.packb(value, use_bin_type=True) != data:
        raise EncodingError("bytes are not the canonical encoding of their value",
                            code="non-canonical")
    return value


def _check_decoded(value: Any, depth: int) -> None:
    """Rules a re-encoding alone cannot see: depth, floats, key types and key order."""
    kind = type(value)
    if kind is dict or kind is list:
        # Every value counts: items of a container at depth 32 would sit at depth 33.
        if value and depth >= MAX_DEPTH:
            raise EncodingError(f"nesting deeper than {MAX_DEPTH} levels", code="too-deep")
    if kind is dict:
        previous = None
        for key, item in value.items():
            if type(key) is not str:
                raise EncodingError("map keys must be strings", code="bad-map-key")
            # Code point order equals UTF-8 byte order, the canonical key order.
            if previous is not None and key <= previous:
                raise EncodingError("map keys are not in canonical (sorted) order",
                                    code="non-canonical")
            previous = key
            if type(item) in _CONTAINERS_OR_FLOAT:
                _check_decoded(item, depth + 1)
    elif kind is list:
        for item in value:
            if type(item) in _CONTAINERS_OR_FLOAT:
                _check_decoded(item, depth + 1)
    elif kind is float:
        raise EncodingError("floats are not allowed; use integers or decimal strings",
                            code="float")


_CONTAINERS_OR_FLOAT = (dict, list, float)
