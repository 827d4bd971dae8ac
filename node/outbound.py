"""Outbound HTTP (gossip to peers, webhook deliveries): never to a refused address.

Names are checked where it matters, after DNS resolution: a host that resolves only into
a refused range is not called, and the error says so (shown in peer and webhook status).
Always refused: unspecified addresses (0.0.0.0, ::). Refused for webhooks unless the
config allows it: loopback and link-local (a webhook URL is typed by an admin and must
not reach the node's own machine by accident). Extra ranges come from the config's
`outbound_deny` (comma-separated CIDRs). Redirects are never followed (callers pass
allow_redirects=False), so a refused address cannot be reached through one either.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from .config import Config, ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCAL = ("127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10")


class RefusedAddress(OSError):
    """The host resolves only into refused ranges."""

    def __init__(self, detail: str) -> None:
        # As (errno, strerror): aiohttp shows the strerror of a resolver's error.
        super().__init__(errno.EHOSTUNREACH, detail)

    def __str__(self) -> str:
        return str(self.strerror)


def deny_list(config: Config, *, webhooks: bool) -> list[Network]:
    ranges = [r.strip() for r in config.outbound_deny.split(",") if r.strip()]
    if webhooks and not config.webhook_allow_local:
        ranges += LOCAL
    try:
        return [ipaddress.ip_network(r, strict=False) for r in ranges]
    except ValueError as exc:
        raise ConfigError(f"outbound_deny: {exc}; give comma-separated CIDR ranges such as "
                          "'10.0.0.0/8, fd00::/8'") from None


def refused(address: str, deny: Iterable[Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_unspecified or any(ip in net for net in deny)


class GuardedResolver(AbstractResolver):
    """The default resolver, minus every address in a refused range."""

    def __init__(self, deny: list[Network]) -> None:
        self.deny = deny
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        allowed = [r for r in found if not refused(r["host"], self.deny)]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in found}))
            raise RefusedAddress(f"{host} resolves only to refused addresses ({shown}); "
                                 "an admin can change outbound_deny / webhook_allow_local")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def check_literal(url_host: str | None, deny: list[Network]) -> None:
    """aiohttp does not resolve IP literals: check those before connecting."""
    try:
        literal = url_host is not None and refused(url_host.strip("[]"), deny)
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if literal:
        raise RefusedAddress(f"{url_host} is a refused address; an admin can change "
                             "outbound_deny / webhook_allow_local")


class Client:
    """An HTTP client session that never calls a refused address nor follows a redirect."""

    def __init__(self, config: Config, *, webhooks: bool, timeout: aiohttp.ClientTimeout,
                 limit_per_host: int = 0, headers: dict[str, str] | None = None) -> None:
        self.deny = deny_list(config, webhooks=webhooks)
        self.session = aiohttp.ClientSession(
            timeout=timeout, headers=headers, connector=aiohttp.TCPConnector(
                resolver=GuardedResolver(self.deny), limit_per_host=limit_per_host))

    def request(self, method: str, url: str, **kw: Any) -> Any:
        """Like ClientSession.request (an async context manager); RefusedAddress first."""
        check_literal(URL(url).host, self.deny)
        return self.session.request(method, url, allow_redirects=False, **kw)

    async def close(self) -> None:
        await self.session.close()
