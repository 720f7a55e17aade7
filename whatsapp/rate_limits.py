"""Rate limits per sender and per tenant (the `limits` library), and one polite refusal per window.

``memory://`` counters are per process (the default: one web process); ``redis://…`` shares them
between web processes. A sender over its limit, or a tenant over its own, is refused: the first
refusal in a minute gets the account's polite reply in the webhook's TwiML, the next ones nothing
(a flood is not answered with a flood).
"""

from __future__ import annotations

from dataclasses import dataclass

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from whatsapp.errors import ConfigError


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
            self.limiter = MovingWindowRateLimiter(storage_from_string(storage))
        except ValueError as e:
            raise ConfigError(f"rate limits: {e}") from e

    def check(self, tenant_id: int, contact: str) -> Verdict:
        if not self.limiter.hit(self.tenant, "tenant", str(tenant_id)):
            return Verdict(False, self.limiter.hit(self.notice, "notice", str(tenant_id), contact), "tenant")
        if not self.limiter.hit(self.sender, "sender", str(tenant_id), contact):
            return Verdict(False, self.limiter.hit(self.notice, "notice", str(tenant_id), contact), "sender")
        return Verdict(True)
