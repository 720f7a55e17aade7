"""Per-tenant concurrent-call limit, counted in this controller process.

`CallLimiter.try_acquire(tenant)` admits a call while the tenant has fewer than
``max_concurrent_calls`` live calls (unset or 0: no limit) and otherwise says what the caller gets,
from the tenant's ``over_limit_action`` and settings:

- ``reject``   hang up with ``settings["over_limit_hangup_cause"]`` (default ``USER_BUSY``);
- ``announce`` say ``settings["over_limit_prompt"]`` then hang up with that cause;
- ``transfer`` transfer to ``settings["over_limit_transfer"]`` (``reject`` if it is not set).

Every admitted call must be released exactly once (`slot()` does it).  The count is per process:
with several controllers the limit applies to each of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from schema.snapshot import TenantSnapshot

log = structlog.get_logger(__name__)
DEFAULT_PROMPT = "All our lines are busy right now. Please call again later."
DEFAULT_CAUSE = "USER_BUSY"


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    active: int                      # live calls of the tenant after this decision
    limit: int | None
    action: str = ""                 # "", "reject", "announce" or "transfer"
    prompt: str | None = None        # for "announce"
    transfer_to: str | None = None   # for "transfer"
    hangup_cause: str = ""           # for "reject" and "announce"


class CallLimiter:
    """Counts live calls per tenant (by domain_uuid); safe across greenlets and threads."""

    def __init__(self) -> None:
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()  # held only around dict arithmetic: never across I/O

    def active(self, tenant_key: str) -> int:
        with self._lock:
            return self._active.get(tenant_key, 0)

    def try_acquire(self, tenant: TenantSnapshot) -> Admission:
        limit = tenant.max_concurrent_calls or None
        with self._lock:
            current = self._active.get(tenant.key, 0)
            if limit is None or current < limit:
                self._active[tenant.key] = current + 1
                return Admission(admitted=True, active=current + 1, limit=limit)
        decision = _over_limit(tenant, current, limit)
        log.warning("call_over_limit", tenant=tenant.domain_name, active=current, limit=limit,
                    action=decision.action)
        return decision

    def release(self, tenant: TenantSnapshot | str) -> int:
        """Give back an admitted call's slot; returns the tenant's live calls left."""
        key = tenant if isinstance(tenant, str) else tenant.key
        with self._lock:
            current = self._active.get(key, 0)
            if current <= 0:
                log.error("call_limit_release_without_acquire", tenant_key=key)
                return 0
            if current == 1:
                del self._active[key]
                return 0
            self._active[key] = current - 1
            return current - 1

    @contextmanager
    def slot(self, tenant: TenantSnapshot) -> Iterator[Admission]:
        """``with limiter.slot(t) as a:`` — released on exit when `a.admitted`."""
        admission = self.try_acquire(tenant)
        try:
            yield admission
        finally:
            if admission.admitted:
                self.release(tenant)


def _over_limit(tenant: TenantSnapshot, current: int, limit: int | None) -> Admission:
    settings = tenant.settings
    cause = str(settings.get("over_limit_hangup_cause") or DEFAULT_CAUSE)
    action = tenant.over_limit_action
    if action == "transfer":
        target = settings.get("over_limit_transfer")
        if target:
            return Admission(False, current, limit, action="transfer", transfer_to=str(target))
        log.error("over_limit_transfer_unset", tenant=tenant.domain_name)
        action = "reject"
    if action == "announce":
        prompt = str(settings.get("over_limit_prompt") or DEFAULT_PROMPT)
        return Admission(False, current, limit, action="announce", prompt=prompt, hangup_cause=cause)
    return Admission(False, current, limit, action="reject", hangup_cause=cause)
