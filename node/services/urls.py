"""Outbound URLs (peers, webhooks): checked when they are stored, before the node ever
resolves or calls them. A clear 422 names what is wrong.

Refused at creation: anything but absolute http(s) URLs, control characters or spaces
anywhere, malformed hosts and ports, credentials, and hosts that mean "this machine, any
address" (0.0.0.0, ::, and shorthands such as http://0 that resolvers turn into them).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from .errors import Invalid

MAX_URL_LENGTH = 2048
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
_NUMERIC = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}$")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host literal stands for (also inet_aton shorthands like '0', '127.1')."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise Invalid("invalid-field", f"url host {host!r} is not a valid address",
                          field="url") from None
    return None


def check_http_url(url: Any, hint: str) -> str:
    """An absolute http(s) URL with a valid, usable host; ``hint`` says what to give."""
    if not isinstance(url, str) or not url:
        raise Invalid("invalid-field", f"url is required; {hint}", field="url")
    if len(url) > MAX_URL_LENGTH:
        raise Invalid("invalid-field", f"url is longer than {MAX_URL_LENGTH} characters",
                      field="url")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise Invalid("invalid-field", "url must not contain spaces or control characters",
                      field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise Invalid("invalid-field", f"url is not a valid URL; {hint}", field="url") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise Invalid("invalid-field", f"url must start with http:// or https:// and name a "
                      f"host; {hint}", field="url")
    if parts.username is not None or parts.password is not None:
        raise Invalid("invalid-field", f"url must not carry credentials; {hint}", field="url")
    address = _address(host)
    if address is None:
        try:
            ascii_host = host.encode("idna").decode()
        except UnicodeError:
            ascii_host = ""
        last = ascii_host.rstrip(".").rpartition(".")[2]
        # A numeric last label is no DNS name: a malformed address such as 256.1.1.1.1.
        if not _HOSTNAME.match(ascii_host) or _NUMERIC.match(last):
            raise Invalid("invalid-field", f"url host {host[:80]!r} is not a valid host name",
                          field="url")
    elif address.is_unspecified:
        raise Invalid("invalid-field", f"url host {host!r} means 'any address' and cannot be "
                      f"called; {hint}", field="url")
    return url
