"""Sign-in attempt limits: failures per name and per client address in a sliding window.

In memory on purpose: a restart forgiving a few failures costs little, and sign-in must
not write (it runs on the store's reader threads, several at once, hence the lock).
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from .errors import TooMany
from .names import name_key


def address_key(address: Any) -> str:
    """IPv6 clients are counted per /64: one host usually holds the whole prefix."""
    text = str(address or "")[:64]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return "a:" + text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return "a:" + str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return "a:" + str(getattr(ip, "ipv4_mapped", None) or ip)


@dataclass
class SignInLimiter:
    """At most ``per_name`` failures per name (case-insensitive) and ``per_address`` per
    client address within ``window_s``.

    Only the last ``limit`` failure times of a key are kept, and at most ``max_keys`` keys
    (those whose last failure is oldest go first), so a flood of names cannot grow memory
    without bound.
    """

    per_name: int = 5
    per_address: int = 20
    window_s: float = 15 * 60
    max_keys: int = 20_000
    _fails: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _keys(self, name: Any, address: Any) -> tuple[tuple[str, int], tuple[str, int]]:
        return (("n:" + name_key(str(name or ""))[:200], self.per_name),
                (address_key(address), self.per_address))

    def check(self, name: Any, address: Any, now_s: float) -> None:
        """Raise TooMany (with ``retry_after`` seconds) while the name or the address has
        used up its failures."""
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(name, address):
                times = self._fails.get(key)
                if times is not None and len(times) >= limit:
                    recent = [t for t in times if t > now_s - self.window_s]
                    if len(recent) >= limit:
                        wait = max(wait, recent[-limit] + self.window_s - now_s)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            minutes = max(1, math.ceil(seconds / 60))
            raise TooMany("too-many-attempts", f"Too many failed sign-ins. Wait and try "
                          f"again in {minutes} minute{'s' if minutes != 1 else ''}.",
                          retry_after=seconds)

    def failed(self, name: Any, address: Any, now_s: float) -> None:
        with self._lock:
            for key, limit in self._keys(name, address):
                times = self._fails.pop(key, None) or deque(maxlen=limit)
                times.append(now_s)
                self._fails[key] = times  # re-inserted: the order is by last failure
            self._prune(now_s)

    def succeeded(self, name: Any, address: Any) -> None:
        """Forget the name's failures. The address keeps its count: one good account must
        not buy an attacker at the same address a fresh budget for other names."""
        with self._lock:
            self._fails.pop(self._keys(name, address)[0][0], None)

    def _prune(self, now_s: float) -> None:
        while self._fails:
            key, times = next(iter(self._fails.items()))
            if len(self._fails) <= self.max_keys and times[-1] > now_s - self.window_s:
                break
            del self._fails[key]

    def __len__(self) -> int:
        return len(self._fails)
