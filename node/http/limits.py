"""Client API rate limits: a token bucket per API token and one per client address.

Distinct from federation's per-peer limits (federation/server.py), which these never
touch. The address bucket is charged before authentication, so a flood of bad tokens
costs no database reads; the token bucket after it, so one program cannot take a whole
node's capacity with one token from many addresses. Past a bucket: 429 with Retry-After,
counted in the `aidmesh_rate_limited` metric. A rate of 0 turns a limit off.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from aiohttp import web

from ..runtime import NODE, PRINCIPAL
from .problems import Problem

MAX_KEYS = 10_000  # buckets kept per limiter; the least recently used go first
UNLIMITED = ("/federation/", "/healthz", "/metrics")  # peers have their own limits


@dataclass
class RateLimiter:
    rate: float  # requests per second, sustained
    burst: float
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def wait(self, key: str, now: float) -> float:
        """0 and one request charged, or the seconds until ``key`` may ask again."""
        if self.rate <= 0:
            return 0.0
        tokens, stamp = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        return 0.0


@dataclass
class Limits:
    per_address: RateLimiter
    per_token: RateLimiter


LIMITS = web.AppKey("rate_limits", Limits)


def install(app: web.Application, rate: float, burst: int, address_rate: float,
            address_burst: int) -> None:
    app[LIMITS] = Limits(RateLimiter(address_rate, address_burst), RateLimiter(rate, burst))


def _refuse(request: web.Request, scope: str, wait: float) -> Problem:
    request.app[NODE].metrics.rate_limited.labels(scope).inc()
    what = "API token" if scope == "token" else "address"
    return Problem(429, "rate-limited", f"too many requests from this {what}; retry in "
                   f"{math.ceil(wait)} s", headers={"Retry-After": str(math.ceil(wait))})


def _exempt(request: web.Request) -> bool:
    return request.path.startswith(UNLIMITED)


@web.middleware
async def per_address(request: web.Request, handler) -> web.StreamResponse:
    if not _exempt(request):
        wait = request.app[LIMITS].per_address.wait(request.remote or "", time.monotonic())
        if wait:
            raise _refuse(request, "address", wait)
    return await handler(request)


@web.middleware
async def per_token(request: web.Request, handler) -> web.StreamResponse:
    """After `authenticate`: charges the token that made the request, if any."""
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.token_id and not _exempt(request):
        wait = request.app[LIMITS].per_token.wait(principal.token_id, time.monotonic())
        if wait:
            raise _refuse(request, "token", wait)
    return await handler(request)
