"""Rate limits per sender and per tenant (the `limits` library), and one polite refusal per window.

Fixed windows (`limits`' ``FixedWindowRateLimiter``: one counter per key and window; a burst at a
window's edge may reach twice the rate, which is fine against floods). Counters live in this
process (``IVR_WHATSAPP_LIMITS=memory://``, the default: one web process) or in Redis
(``redis://…``, shared by several web processes).

For ``memory://`` the counters are `ProcessCounters`, a `limits` storage of our own: `limits`'
``MemoryStorage`` re-arms a timer every 10 ms that scans every key, which with thousands of
senders took ~30 % of the web process's CPU at 200 requests/s (`benchmarks/whatsapp`); ours
expires counters when they are read and sweeps the dead ones every 10 s.

A sender over its limit, or a tenant over its own, is refused: the first refusal in a minute gets
the account's polite reply in the webhook's TwiML, the next ones nothing (a flood is not answered
with a flood).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from limits import parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from whatsapp.errors import ConfigError

SWEEP_EVERY = 10.0


class ProcessCounters(Storage):
    """Fixed-window counters in this process, expired lazily (see the module docstring)."""

    STORAGE_SCHEME = ["ivr-process"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._counters: dict[str, tuple[int, float]] = {}     # key -> (count, window end)
        self._next_sweep = time.time() + SWEEP_EVERY

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _sweep(self, now: float) -> None:
        if now >= self._next_sweep:
            self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
            self._next_sweep = now + SWEEP_EVERY

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        self._sweep(now)
        count, end = self._counters.get(key, (0, 0.0))
        if end <= now:
            count, end = 0, now + expiry
        count += amount
        self._counters[key] = (count, end)
        return count

    def get(self, key: str) -> int:
        count, end = self._counters.get(key, (0, 0.0))
        return count if end > time.time() else 0

    def get_expiry(self, key: str) -> float:
        count, end = self._counters.get(key, (0, 0.0))
        return end if end > time.time() else time.time()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        count = len(self._counters)
        self._counters.clear()
        return count

    def clear(self, key: str) -> None:
        self._counters.pop(key, None)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    notify: bool = False      # refused, and this is the first refusal of the window: say so once
    scope: str = ""           # "sender" | "tenant"


class RateLimits:
    def __init__(self, *, storage: str = "memory://", sender: str = "20/minute", tenant: str = "600/minute",
                 notice: str = "1/minute") -> None:
        try:
            self.sender = parse(sender)
            self.tenant = parse(tenant)
            self.notice = parse(notice)
            backend = ProcessCounters() if storage.startswith("memory://") else storage_from_string(storage)
            self.limiter = FixedWindowRateLimiter(backend)
        except ValueError as e:
            raise ConfigError(f"rate limits: {e}") from e

    def check(self, tenant_id: int, contact: str) -> Verdict:
        if not self.limiter.hit(self.tenant, "tenant", str(tenant_id)):
            return Verdict(False, self.limiter.hit(self.notice, "notice", str(tenant_id), contact), "tenant")
        if not self.limiter.hit(self.sender, "sender", str(tenant_id), contact):
            return Verdict(False, self.limiter.hit(self.notice, "notice", str(tenant_id), contact), "sender")
        return Verdict(True)
