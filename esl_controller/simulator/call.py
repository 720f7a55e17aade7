"""`SimCall`: one simulated call, from the dialplan to the last byte, and what came of it.

A call runs in its own greenlet (the FreeSWITCH session thread): it executes the dialplan
(`run_dialplan`), whose ``socket`` app dials the controller; a caller greenlet plays the
`CallerScript`; timers fire ``sched_*`` tasks.  When the dialplan is done the channel hangs
up (if it has not already), fires CS_HANGUP, CS_REPORTING and CHANNEL_HANGUP_COMPLETE, and the
listener sends its disconnect or linger notice and waits for ``exit`` or the linger time.

What the simulator saw is kept on the call: `SimCall.transcript` (every command received),
`SimCall.frames_sent`, `SimCall.events_sent`, `SimCall.state` (`CallState`) and, once the call
is over, `SimCall.outcome` (`CallOutcome`):

=====================  ==============================================================
``controller_hangup``  the controller hung up (``cause``): hangup app, call-command,
                       ``uuid_kill``, an unknown application
``caller_hangup``      the caller hung up while the controller had the call
``transferred``        the controller transferred the call (``target``) and it ended there
``bridged``            the call ended in, or because of the end of, a bridge (``target``)
``fallback``           the dialplan took the call back (``reason``; ``target`` = the extension
                       it ended in): no controller, controller gone, hand-back, watchdog
``stranded``           dead air: the controller accepted but never sent ``connect``, no resume
``cs_reset``           dead air: the CS_RESET trap (connection ended after a transfer that
                       kept the socket, or in sync mode, with ``socket_resume`` true)
``unanswered_timeout`` the caller gave up before anyone answered
``ended``              anything else (``reason`` says who hung up)
=====================  ==============================================================
"""

from __future__ import annotations

import socket
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gevent
import structlog
from gevent.event import Event as GEvent

from esl_controller.simulator.apps import APPS
from esl_controller.simulator.audio import CallerLine, load_pcm8k
from esl_controller.simulator.caller import CallerRunner, CallerScript, say
from esl_controller.simulator.channel import Channel, Dtmf, TransferRequest
from esl_controller.simulator.clock import SimClock
from esl_controller.simulator.commands import ReceivedCommand
from esl_controller.simulator.dialplan import DEFAULT_EXTENSION, Action, BridgeTarget, DialplanSpec, run_dialplan
from esl_controller.simulator.errors import SimulatorTimeout
from esl_controller.simulator.events import SimEvent
from esl_controller.simulator.execution import AppFn
from esl_controller.simulator.faults import Faults
from esl_controller.simulator.listener import Listener
from esl_controller.simulator.records import BridgeAttempt, ConnectAttempt, Heard, Recording, SentFrame

if TYPE_CHECKING:
    from esl_controller.simulator.simulator import FreeSwitchSimulator

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    kind: str
    cause: str = ""
    target: str = ""
    reason: str = ""

    def __str__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in (("cause", self.cause), ("target", self.target),
                                                    ("reason", self.reason)) if v)
        return f"{self.kind}({extra})" if extra else self.kind


class CallState:
    """The call as the simulator sees it (live: read it any time)."""

    def __init__(self, call: SimCall) -> None:
        self._call = call
        # dialplan | connecting | socket | transferred | fallback | stranded | cs_reset
        self.phase = "dialplan"
        self.in_socket_app = False
        self.connected = False            # the controller sent ``connect``
        self.connect_attempts: list[ConnectAttempt] = []
        self.socket_end_reason = ""
        self.transferred_to: str | None = None
        self.fallback_reason = ""
        self.fallback_extension: str | None = None
        self.bridged_to: str | None = None
        self.bridge_active = False
        self.ended_in_bridge = False
        self.bridges: list[BridgeAttempt] = []
        self.recordings: list[Recording] = []
        self.heard: list[Heard] = []
        self.notes: list[str] = []
        self.gave_up = ""
        self.dead_air_since: float | None = None

    @property
    def answered(self) -> bool:
        return bool(self._call.channel.answered_us)

    @property
    def hung_up(self) -> bool:
        return self._call.channel.hung_up

    @property
    def hangup_cause(self) -> str:
        return self._call.channel.hangup_cause

    @property
    def hangup_by(self) -> str:
        return self._call.channel.hangup_by

    @property
    def variables(self) -> dict[str, str]:
        return self._call.channel.vars.snapshot()

    @property
    def digits_dialed(self) -> str:
        return "".join(self._call.channel.digits_dialed)

    @property
    def dtmf_sent(self) -> list[str]:
        return list(self._call.channel.dtmf_sent)

    @property
    def heard_what(self) -> list[str]:
        """What the caller heard, in order: file paths and spoken texts."""
        return [item.what for item in self.heard if item.stop != "not_found"]


class SimCall:
    """One simulated call; create it with `FreeSwitchSimulator.place_call`."""

    def __init__(self, sim: FreeSwitchSimulator, *, destination: str, caller_number: str, caller_name: str,
                 setup: Sequence[Action], dialplan: DialplanSpec, caller: CallerScript | None,
                 extensions: Mapping[str, Sequence[Action]], bridge_targets: Mapping[str, BridgeTarget],
                 faults: Faults, on_command: Callable[[ReceivedCommand], None] | None = None,
                 on_frame: Callable[[SentFrame], None] | None = None) -> None:
        self.sim = sim
        self.clock = SimClock(sim.speed)
        self.uuid = str(uuidlib.uuid4())
        self.a_leg_uuid = str(uuidlib.uuid4())
        self.channel = Channel(identity=sim.identity, clock=self.clock, next_seq=sim.next_seq, uuid=self.uuid,
                               a_leg_uuid=self.a_leg_uuid, name=f"loopback/{destination}-b",
                               session_id=sim.next_session_id(), caller_number=caller_number,
                               caller_name=caller_name, destination=destination)
        self.line = CallerLine()
        self.applications: Mapping[str, AppFn] = APPS
        self.origin = "dialplan"
        self.faults = faults
        self.max_linger = sim.max_linger
        self.connect_timeout = sim.connect_timeout
        self.listener: Listener | None = None
        self.state = CallState(self)
        self.transcript: list[ReceivedCommand] = []
        self.frames_sent: list[SentFrame] = []
        self.outcome: CallOutcome | None = None
        self._setup = tuple(setup)
        self._dialplan = dialplan
        self._extensions = {**dialplan.extensions, **extensions}
        self._bridge_targets = dict(bridge_targets)
        self._caller = CallerRunner(self, caller or CallerScript())
        self._on_command = on_command
        self._on_frame = on_frame
        self._scheduled: dict[str, list[gevent.Greenlet]] = {}
        self._done = GEvent()
        self._finished = False
        self._greenlets: list[gevent.Greenlet] = []
        self._log = log.bind(call=self.uuid)

    # ================================================================== running

    def start(self) -> SimCall:
        self._greenlets.append(gevent.spawn(self._run))
        return self

    def _run(self) -> None:
        ch = self.channel
        try:
            self._greenlets.append(gevent.spawn(self._caller.run))
            run_dialplan(self, (*self._setup, *self._dialplan.actions))
            if not ch.hung_up:
                ch.hangup("NORMAL_CLEARING", by="dialplan")
            ch.finish_hangup()
            self._wait_for_listener()
        except gevent.GreenletExit:
            pass
        except Exception:
            self._log.exception("sim.call_crashed")
            self.state.notes.append("simulator error (see logs)")
        finally:
            self._finish()

    def _wait_for_listener(self) -> None:
        listener = self.listener
        if listener is None:
            return
        deadline = self.clock.now() + self.max_linger + 5.0
        while not listener.ended and self.clock.now() < deadline:
            generation = self.channel.signal.generation()
            if listener.ended:
                break
            self.channel.signal.wait(self.clock.until(deadline), generation)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        ch = self.channel
        for group in list(self._scheduled):
            self.cancel_scheduled(group)
        self._caller.stop()
        if self.listener is not None and not self.listener.ended:
            self.listener.close("call cleaned up")
        if not ch.hung_up:
            ch.hangup("NORMAL_CLEARING", by="simulator")
        ch.destroyed = True
        ch.signal.notify()
        self.outcome = self._decide_outcome()
        self.sim.forget(self)
        self._log.info("sim.call_ended", outcome=str(self.outcome), commands=len(self.transcript))
        self._done.set()
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)

    def _decide_outcome(self) -> CallOutcome:
        st, ch = self.state, self.channel
        cause = ch.hangup_cause
        if st.phase in ("cs_reset", "stranded"):
            return CallOutcome(st.phase, cause, reason=st.socket_end_reason)
        if st.gave_up == "unanswered":
            return CallOutcome("unanswered_timeout", cause)
        if st.phase == "fallback":
            return CallOutcome("fallback", cause, target=st.fallback_extension or "", reason=st.fallback_reason)
        if st.phase == "transferred":
            return CallOutcome("transferred", cause, target=st.transferred_to or "")
        if st.ended_in_bridge or ch.hangup_by == "bridge":
            return CallOutcome("bridged", cause, target=st.bridged_to or "")
        if ch.hangup_by == "controller":
            return CallOutcome("controller_hangup", cause)
        if ch.hangup_by == "caller":
            return CallOutcome("caller_hangup", cause)
        return CallOutcome("ended", cause, reason=ch.hangup_by)

    def wait(self, timeout: float = 300.0) -> CallOutcome:
        """Block (at most ``timeout`` real seconds) until the call is over; its `CallOutcome`."""
        if not self._done.wait(timeout=timeout):
            raise SimulatorTimeout(f"call {self.uuid} still running after {timeout} s (phase {self.state.phase})")
        assert self.outcome is not None
        return self.outcome

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def kill(self) -> None:
        """Stop the call now (the test is over): hang up, close the socket, stop every greenlet."""
        if self._done.is_set():
            return
        self.channel.hangup("NORMAL_CLEARING", by="simulator")
        if self.listener is not None:
            self.listener.close("killed")
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        self._finish()

    # ================================================================== what was seen

    def commands(self) -> list[str]:
        """The commands received, e.g. ``"sendmsg execute playback /x.wav"``."""
        return [command.summary for command in self.transcript]

    @property
    def events_sent(self) -> list[SimEvent]:
        return [event for event in self.channel.events if event.delivered]

    @property
    def commands_received(self) -> int:
        return len(self.transcript)

    def command_time(self, index: int) -> float:
        return self.transcript[index].at

    @property
    def dead_air_since(self) -> float | None:
        return self.state.dead_air_since

    # ================================================================== interactive caller

    def press(self, digits: str, duration_ms: int = 250) -> None:
        for digit in digits:
            self.channel.receive_dtmf(Dtmf(digit, duration_ms))

    def speak(self, wav_path: str | Path, text: str | None = None) -> float:
        """The caller says a WAV now; returns the simulated second they finish."""
        return say(self, load_pcm8k(wav_path), text)

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        self.channel.hangup(cause, by="caller")

    # ================================================================== host services (apps, listener)

    def next_seq(self) -> int:
        return self.sim.next_seq()

    def media_path(self, path: str) -> Path | None:
        return self.sim.media_path(path)

    def record_path(self, path: str) -> Path:
        return self.sim.record_path(path)

    def bridge_target(self, dial: str) -> BridgeTarget:
        best = None
        for key in self._bridge_targets:
            if key in dial and (best is None or len(key) > len(best)):
                best = key
        return self._bridge_targets[best] if best is not None else BridgeTarget()

    def extension_actions(self, extension: str) -> Sequence[Action]:
        return self._extensions.get(extension, DEFAULT_EXTENSION)

    def schedule(self, group: str, delay: float, action: Callable[[], None]) -> None:
        def fire() -> None:
            if not self.channel.hung_up:
                action()

        greenlet = gevent.spawn_later(self.clock.real(delay), fire)
        self._scheduled.setdefault(group, []).append(greenlet)

    def cancel_scheduled(self, group: str) -> int:
        greenlets = self._scheduled.pop(group, [])
        for greenlet in greenlets:
            greenlet.kill(block=False)
        return len(greenlets)

    def lookup(self, uuid: str) -> tuple[Channel, str] | None:
        return self.sim.lookup(uuid)

    def heard(self, item: Heard) -> None:
        self.state.heard.append(item)

    def recorded(self, item: Recording) -> None:
        self.state.recordings.append(item)

    def bridge_started(self, dial: str) -> None:
        self.state.bridged_to = dial
        self.state.bridge_active = True

    def bridge_ended(self, attempt: BridgeAttempt) -> None:
        self.state.bridges.append(attempt)
        if attempt.answered:
            self.state.bridge_active = False
            if self.channel.hung_up:
                self.state.ended_in_bridge = True

    def park_started(self) -> None:
        listener = self.listener
        if listener is not None and not listener.ended and not listener.sub.covers("CHANNEL_PARK"):
            listener.park_pending = True
        else:
            self.channel.emit("CHANNEL_PARK")

    def on_transfer(self, request: TransferRequest) -> None:
        st = self.state
        if request.by == "controller":
            st.phase = "transferred"
            st.transferred_to = request.extension
        else:
            st.phase = "fallback"
            st.fallback_extension = request.extension
            st.fallback_reason = st.fallback_reason or request.reason

    def note_fallback(self, reason: str) -> None:
        st = self.state
        st.phase = "fallback"
        st.fallback_reason = st.fallback_reason or reason

    def dead_air(self, kind: str) -> None:
        """The channel sits in silence (stranded, CS_RESET) until the caller hangs up."""
        ch = self.channel
        self.state.phase = kind
        self.state.dead_air_since = self.clock.now()
        self._log.info("sim.dead_air", kind=kind)
        ch.signal.notify()
        while not ch.hung_up:
            generation = ch.signal.generation()
            if ch.hung_up:
                break
            ch.signal.wait(float("inf"), generation)

    def entering_socket(self, inside: bool) -> None:
        self.state.in_socket_app = inside

    def connect_attempt(self, attempt: ConnectAttempt) -> None:
        self.state.connect_attempts.append(attempt)
        if attempt.result == "connected" and self.state.phase == "dialplan":
            self.state.phase = "connecting"

    def open_listener(self, sock: socket.socket, *, async_mode: bool, full: bool) -> Listener:
        self.listener = Listener(self, sock, async_mode=async_mode, full=full)
        return self.listener

    def controller_connected(self) -> None:
        self.state.connected = True
        if self.state.phase in ("dialplan", "connecting"):
            self.state.phase = "socket"

    def listener_ended(self, listener: Listener) -> None:
        """The controller connection is gone: what FreeSWITCH does with the channel now."""
        ch, st = self.channel, self.state
        st.socket_end_reason = listener.end_reason
        if not ch.hung_up and listener.connected:
            resume = listener.resume
            if listener.async_mode and st.in_socket_app:
                if resume:
                    ch.reset_requested = True
                ch.control_epoch += 1
            elif listener.async_mode:
                if resume:
                    ch.reset_trap = True
                else:
                    ch.control_epoch += 1
        ch.signal.notify()

    def command_received(self, command: ReceivedCommand) -> None:
        self.transcript.append(command)
        if self._on_command is not None:
            self._on_command(command)
        self.channel.signal.notify()

    def frame_sent(self, frame: SentFrame) -> None:
        self.frames_sent.append(frame)
        if self._on_frame is not None:
            self._on_frame(frame)

    def caller_note(self, note: str) -> None:
        self.state.notes.append(note)

    def caller_gave_up(self, why: str) -> None:
        self.state.gave_up = why
