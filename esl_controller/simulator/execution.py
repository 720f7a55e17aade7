"""How the simulated session thread runs applications.

`execute` is ``switch_core_session_exec``: it sets ``current_application`` (twice, around
CHANNEL_EXECUTE, which is why the variable ends up after ``current_application_data``),
clears the break flag and the previous response, runs the application, then fires
CHANNEL_EXECUTE_COMPLETE with ``Application-Response`` taken from
``current_application_response`` (so the ``socket`` app's completion repeats the last
response of an application run inside it, traces ``h2`` and ``i1``).  An application the
simulator does not know hangs the call up with DESTINATION_OUT_OF_ORDER and fires no
execute events (trace ``k1``).

`park_loop` is ``switch_ivr_park`` with the socket's private event queue: it runs queued
``sendmsg`` executes one after another and dequeues DTMF while idle.  Real FreeSWITCH runs a
``sendmsg`` sent *without* ``event-lock`` nested inside the running application, so two such
playbacks complete LIFO (trace ``b2``); the simulator runs both kinds from the same FIFO queue.
"""

from __future__ import annotations

import math
import uuid as uuidlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import gevent
import structlog

from esl_controller.simulator.audio import FRAME_SECONDS, CallerLine
from esl_controller.simulator.channel import Channel, QueuedApp
from esl_controller.simulator.clock import SimClock
from esl_controller.simulator.records import BridgeAttempt, Heard, Recording

if TYPE_CHECKING:
    from esl_controller.simulator.dialplan import BridgeTarget

log = structlog.get_logger(__name__)


class AppHost(Protocol):
    """What an application may use: the call it runs on."""

    channel: Channel
    clock: SimClock
    line: CallerLine
    applications: Mapping[str, AppFn]
    origin: str                                       # who runs the current app: "controller" | "dialplan"

    def media_path(self, path: str) -> Path | None: ...
    def record_path(self, path: str) -> Path: ...
    def bridge_target(self, dial: str) -> BridgeTarget: ...
    def schedule(self, group: str, delay: float, action: Callable[[], None]) -> None: ...
    def cancel_scheduled(self, group: str) -> int: ...
    def heard(self, item: Heard) -> None: ...
    def recorded(self, item: Recording) -> None: ...
    def bridge_started(self, dial: str) -> None: ...
    def bridge_ended(self, attempt: BridgeAttempt) -> None: ...
    def park_started(self) -> None: ...


AppFn = Callable[[AppHost, str], "str | None"]


def execute(host: AppHost, app: str, arg: str, *, app_uuid: str | None = None, via_sendmsg: bool = False,
            loops: int = 1) -> None:
    """Run one application with its CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE."""
    ch = host.channel
    origin = "controller" if via_sendmsg else "dialplan"
    fn = host.applications.get(app)
    loops = max(1, loops)
    if fn is None:
        log.info("sim.unknown_application", app=app)
        if via_sendmsg:
            ch.vars.set("current_loop", "1")
            ch.vars.set("total_loops", str(loops))
        ch.hangup("DESTINATION_OUT_OF_ORDER", by=origin)
        ch.vars.set("current_loop", None)
        ch.vars.set("total_loops", None)
        return
    for loop in range(1, loops + 1):
        if loop > 1 and not ch.media_ok:
            break
        if via_sendmsg:
            ch.vars.set("current_loop", str(loop))
            ch.vars.set("total_loops", str(loops))
        event_uuid = app_uuid or str(uuidlib.uuid4())
        data = [("Application-Data", arg)] if arg else []
        ch.vars.set("current_application", app)
        ch.vars.set("current_application_data", arg or None)
        ch.vars.set("current_application_response", None)
        ch.break_flag = False
        ch.emit("CHANNEL_EXECUTE", [("Application", app), *data, ("Application-UUID", event_uuid)])
        ch.vars.set("current_application", app)
        previous, previous_origin = ch.current_app, host.origin
        ch.current_app, host.origin = app, origin
        ch.app_event(app, started=True)
        try:
            response = fn(host, arg or "")
        except Exception:
            log.exception("sim.application_failed", app=app)
            response = None
        finally:
            ch.current_app, host.origin = previous, previous_origin
        if response:
            ch.vars.set("current_application_response", response)
        final = ch.vars.get("current_application_response") or "_none_"
        ch.emit("CHANNEL_EXECUTE_COMPLETE",
                [("Application", app), *data, ("Application-Response", final), ("Application-UUID", event_uuid)])
        ch.flush_deferred()
        ch.app_event(app, started=False)
    if via_sendmsg:
        ch.vars.set("current_loop", None)
        ch.vars.set("total_loops", None)


def run_queued(host: AppHost, item: QueuedApp) -> None:
    execute(host, item.app, item.arg, app_uuid=item.event_uuid, via_sendmsg=True, loops=item.loops)


def wait_sim(host: AppHost, deadline: float, stop: Callable[[], bool]) -> bool:
    """Wait until simulated second ``deadline`` or until ``stop()``; True when ``stop()`` ended it."""
    clock, signal = host.clock, host.channel.signal
    while True:
        generation = signal.generation()
        if stop():
            return True
        now = clock.now()
        if now >= deadline:
            return False
        signal.wait(math.inf if deadline == math.inf else clock.until(deadline), generation)


def park_loop(host: AppHost, *, socket: bool = False) -> None:
    """``park``: run queued executes, dequeue DTMF, until hangup, transfer, reset or release.

    A park ends when a controller lets go of the call (``control_epoch`` changes), which is
    how a dropped socket ends the socket app's park and also a ``park`` in another extension
    the call was transferred to (FREESWITCH-SAFETY.md).
    """
    ch = host.channel
    epoch = ch.control_epoch
    ch.parked = True
    if socket:
        host.park_started()
    else:
        ch.emit("CHANNEL_PARK")
    try:
        while ch.media_ok and ch.control_epoch == epoch:
            if ch.app_queue:
                # Private events are parsed on the next 20 ms frame: commands the controller
                # sent back to back are all answered before the first one runs (trace b2).
                gevent.idle()
                wait_sim(host, host.clock.now() + FRAME_SECONDS, lambda: not ch.media_ok)
                if ch.app_queue and ch.media_ok:
                    run_queued(host, ch.app_queue.popleft())
                continue
            ch.drain_dtmf()
            generation = ch.signal.generation()
            if ch.app_queue or ch.dtmf or not ch.media_ok or ch.control_epoch != epoch:
                continue
            ch.signal.wait(math.inf, generation)
    finally:
        ch.parked = False
    ch.emit("CHANNEL_UNPARK")
