"""The dead-man's switch: FreeSWITCH moves a caller to the fallback when this process stops re-arming.

The per-call `ProgressWatchdog` runs inside this process, so a process that hangs (a stuck
C call, SIGSTOP, a hub that never yields) strands every caller in dead air until it resumes.
The remedy must live in FreeSWITCH: each live call keeps a scheduled task there,

    sched_api +10 <uuid> uuid_transfer <uuid> ivr_fallback XML <context>

and one greenlet here re-arms every call's task every few seconds (a new task, then the old one
deleted by its id: `CallSession.rearm_deadman`).  A hung process stops re-arming and ~10 s
later FreeSWITCH transfers the caller to a person (measured on FreeSWITCH 1.10.12 to fire while
apps run).  The task is grouped by the call's uuid, so the fallback extension's
``sched_cancel`` and the channel's end remove it; our own transfers, bridges and hand-backs
delete it first.

A process that wakes after a hang may find that its calls were moved: when the re-arming
greenlet itself slept longer than the task's delay, it asks FreeSWITCH where each call is
(``current_application``) before re-arming it, so a woken controller never schedules a second
transfer of a caller who is already talking to a person.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import structlog

log = structlog.get_logger(__name__)


class DeadMansSwitch:
    """Re-arms the FreeSWITCH-side task of every registered call every ``every`` seconds."""

    def __init__(self, seconds: int = 10, every: float = 4.0) -> None:
        if seconds and every >= seconds:
            raise ValueError("the dead-man's switch must be re-armed more often than it fires")
        self.seconds = seconds
        self.every = every
        self._sessions: set[Any] = set()
        self._greenlet: gevent.Greenlet | None = None
        self.rounds = 0
        self.late_rounds = 0

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def add(self, session: Any) -> None:
        self._sessions.add(session)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def discard(self, session: Any) -> None:
        self._sessions.discard(session)

    def _run(self) -> None:
        last = time.monotonic()
        while self._sessions:
            gevent.sleep(self.every)
            now = time.monotonic()
            # Slept past the task's delay: this process was hung or starved, and FreeSWITCH may have
            # moved our calls already.  Check where each call is before scheduling anything.
            slept, last = now - last, now
            late = slept >= self.seconds - 1
            self.rounds += 1
            if late:
                self.late_rounds += 1
                log.warning("deadman.late_round", slept=round(slept, 1), calls=len(self._sessions))
            for session in list(self._sessions):
                try:
                    session.rearm_deadman(verify=late)
                except Exception:
                    log.exception("deadman.rearm_failed", call_uuid=getattr(session, "uuid", ""))

    def stop(self) -> None:
        self._sessions.clear()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
