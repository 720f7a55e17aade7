"""Simulated time for one call, and the wake-up signal every simulated wait uses.

``speed`` scales every simulated duration: with ``speed=50`` an 11 s prompt takes 0.22 s of
real time.  Durations reported to the controller (``playback_ms``, ``record_ms``, event
timestamps) stay in simulated time, so they read like a real call's.
"""

from __future__ import annotations

import time

import gevent
from gevent.event import Event as GEvent

from esl_controller.simulator.errors import SimulatorConfigError

# A wait on a `Signal` never sleeps longer than this (real seconds) without re-checking.
MAX_REAL_WAIT = 1.0


class SimClock:
    """Maps real time to simulated time for one call."""

    __slots__ = ("_epoch0", "_t0", "speed")

    def __init__(self, speed: float = 1.0, *, epoch: float | None = None) -> None:
        if not speed > 0:
            raise SimulatorConfigError(f"speed must be > 0, got {speed!r}")
        self.speed = float(speed)
        self._t0 = time.monotonic()
        self._epoch0 = time.time() if epoch is None else epoch

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        return (time.monotonic() - self._t0) * self.speed

    def epoch(self) -> float:
        """Simulated wall-clock time (Unix seconds) for event timestamps."""
        return self._epoch0 + self.now()

    def epoch_us(self) -> int:
        return int(self.epoch() * 1_000_000)

    def real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return max(0.0, sim_seconds) / self.speed

    def until(self, sim_deadline: float) -> float:
        """Real seconds left until the simulated instant ``sim_deadline`` (never negative)."""
        return self.real(sim_deadline - self.now())

    def sleep(self, sim_seconds: float) -> None:
        gevent.sleep(self.real(sim_seconds))


class Signal:
    """Wakes every waiter when something about the call changed.

    Waiters take the current generation, check their condition, then wait; a `notify` in
    between is never lost because it completes the generation they hold.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = GEvent()

    def notify(self) -> None:
        event, self._event = self._event, GEvent()
        event.set()

    def generation(self) -> GEvent:
        return self._event

    def wait(self, real_timeout: float, generation: GEvent | None = None) -> None:
        """Wait (at most ``real_timeout`` real seconds, capped) for the next `notify`."""
        event = generation if generation is not None else self._event
        event.wait(timeout=min(max(real_timeout, 0.0), MAX_REAL_WAIT))
