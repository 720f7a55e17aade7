"""The per-call progress watchdog: a call whose flow stops making progress is handed on.

One greenlet scans every live call once a second (one greenlet per call would wake 5,000
times a second at full load).  A call is stalled when nothing happened on its socket for
``stall_seconds`` *and* it is not inside a bounded wait on FreeSWITCH (``wait_deadline``):
a long playback or bridge is progress, a flow stuck in a provider call or a bug is not.
The stalled call's greenlet receives `CallStalled`; the controller then transfers the caller
to the fallback extension (``shared/FREESWITCH-SAFETY.md`` duty 6).
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import structlog

log = structlog.get_logger(__name__)


class CallStalled(BaseException):
    """Raised inside a call's greenlet by the watchdog.  A BaseException (like GreenletExit) so a
    node's or a library's ``except Exception`` cannot swallow it."""


class ProgressWatchdog:
    def __init__(self, stall_seconds: float = 60.0, grace_seconds: float = 10.0, interval: float = 1.0) -> None:
        self.stall_seconds = stall_seconds
        self.grace_seconds = grace_seconds
        self.interval = interval
        self._calls: dict[gevent.Greenlet, Any] = {}
        self._scanner: gevent.Greenlet | None = None
        self.fired = 0

    def watch(self, greenlet: gevent.Greenlet, session: Any) -> None:
        self._calls[greenlet] = session
        if self._scanner is None or self._scanner.dead:
            self._scanner = gevent.spawn(self._scan_forever)

    def forget(self, greenlet: gevent.Greenlet) -> None:
        self._calls.pop(greenlet, None)

    def is_stalled(self, session: Any, now: float) -> bool:
        deadline = session.wait_deadline
        if deadline is not None and now < deadline + self.grace_seconds:
            return False
        return now - session.last_progress > self.stall_seconds

    def scan(self) -> None:
        now = time.monotonic()
        for greenlet, session in list(self._calls.items()):
            if greenlet.dead:
                self._calls.pop(greenlet, None)
            elif self.is_stalled(session, now):
                self._calls.pop(greenlet, None)
                self.fired += 1
                log.warning("call.stalled", call_uuid=getattr(session, "uuid", ""),
                            idle_seconds=round(now - session.last_progress, 1))
                greenlet.kill(CallStalled(), block=False)

    def _scan_forever(self) -> None:
        while self._calls:
            gevent.sleep(self.interval)
            self.scan()

    def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.kill(block=False)
