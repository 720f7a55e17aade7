"""The scripted caller: what the person on the phone does, in simulated time.

A `CallerScript` is a list of actions run in order once the call is answered (or at once,
``start="now"``): `Wait`, `Silence`, `WaitForApp`, `WaitForCommand`, `Press`, `Speak`,
`Hangup`.  After the last action the caller stays on the line, silent, until the call ends.
Whatever the script is doing, the caller hangs up when:

* the call was not answered within ``ring_timeout`` (outcome ``unanswered_timeout``);
* the call lasted ``max_call_seconds`` (default 120 simulated seconds);
* the call sat in dead air (stranded, or the CS_RESET trap) for ``dead_air_patience``.

`WaitForApp` and `WaitForCommand` give up after their ``timeout``; the script then stops
(noted in the call's state) and the caller stays on the line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import gevent
import numpy as np

from esl_controller.simulator.audio import CallerLine, load_pcm8k
from esl_controller.simulator.channel import Channel, Dtmf
from esl_controller.simulator.clock import SimClock
from esl_controller.simulator.errors import SimulatorConfigError


@dataclass(frozen=True, slots=True)
class Wait:
    """Do nothing for ``seconds`` (simulated)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Silence:
    """Stay silent for ``seconds`` (a ``record`` hears quiet frames)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class WaitForApp:
    """Wait until the ``nth`` execution of ``app`` started (or completed, ``started=False``)."""

    app: str
    nth: int = 1
    started: bool = True
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class WaitForCommand:
    """Wait until the simulator has received ``n`` commands from the controller."""

    n: int
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class Press:
    """Press DTMF digits (``DTMF-Duration`` = ``duration_ms``, ``gap`` seconds between)."""

    digits: str
    gap: float = 0.1
    duration_ms: int = 250
    source: str = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Speak:
    """Say the contents of a WAV.  With ``wait_for_record`` the caller waits (up to
    ``timeout``) for a ``record`` to be running, so the next recording captures it; with
    ``block`` the next action comes when they are done talking."""

    wav_path: str | Path
    text: str | None = None
    wait_for_record: bool = True
    timeout: float = 60.0
    block: bool = True


@dataclass(frozen=True, slots=True)
class Hangup:
    cause: str = "NORMAL_CLEARING"


Action = Wait | Silence | WaitForApp | WaitForCommand | Press | Speak | Hangup


@dataclass(frozen=True, slots=True)
class CallerScript:
    actions: Sequence[Action] = ()
    start: str = "answer"                   # "answer" | "now"
    max_call_seconds: float = 120.0
    ring_timeout: float | None = 60.0
    dead_air_patience: float = 20.0

    def __post_init__(self) -> None:
        if self.start not in ("answer", "now"):
            raise SimulatorConfigError(f"CallerScript.start must be 'answer' or 'now', not {self.start!r}")
        for action in self.actions:
            if isinstance(action, Speak) and not Path(action.wav_path).is_file():
                raise SimulatorConfigError(f"Speak: no such WAV file {action.wav_path}")


class CallerHost(Protocol):
    channel: Channel
    clock: SimClock
    line: CallerLine

    @property
    def commands_received(self) -> int: ...
    def command_time(self, index: int) -> float: ...
    @property
    def dead_air_since(self) -> float | None: ...
    def caller_note(self, note: str) -> None: ...
    def caller_gave_up(self, why: str) -> None: ...


class _ScriptStopped(Exception):
    pass


class CallerRunner:
    """Runs one `CallerScript` against a call, in its own greenlets.

    The script keeps its own simulated-time cursor: ``WaitForApp`` moves it to the moment
    the application started, ``Wait(2)`` to two seconds after that, and speech is placed on
    the timeline at the cursor.  How late the caller greenlet happens to wake up therefore
    does not change what the caller does when, at any ``speed``.
    """

    def __init__(self, host: CallerHost, script: CallerScript) -> None:
        self.host = host
        self.script = script
        self._script_greenlet: gevent.Greenlet | None = None
        self.started_at = host.clock.now()
        self.cursor = self.started_at

    # ------------------------------------------------------------------ supervision

    def run(self) -> None:
        """Supervise the call: start the script, hang up on the limits, stop at hangup."""
        host, script, ch = self.host, self.script, self.host.channel
        try:
            while not ch.hung_up:
                generation = ch.signal.generation()
                now = host.clock.now()
                elapsed = now - self.started_at
                if self._script_greenlet is None and (script.start == "now" or ch.answered_at is not None):
                    self.cursor = ch.answered_at if script.start == "answer" and ch.answered_at is not None else now
                    self._script_greenlet = gevent.spawn(self._run_script)
                deadlines = [self.started_at + script.max_call_seconds]
                if ch.answered_at is None and script.ring_timeout is not None:
                    deadlines.append(self.started_at + script.ring_timeout)
                    if elapsed >= script.ring_timeout:
                        host.caller_gave_up("unanswered")
                        ch.hangup("ORIGINATOR_CANCEL", by="caller")
                        break
                if elapsed >= script.max_call_seconds:
                    host.caller_note("hung up at the maximum call duration")
                    ch.hangup("NORMAL_CLEARING", by="caller")
                    break
                since = host.dead_air_since
                if since is not None:
                    if now - since >= script.dead_air_patience:
                        host.caller_note("hung up after dead air")
                        ch.hangup("NORMAL_CLEARING", by="caller")
                        break
                    deadlines.append(since + script.dead_air_patience)
                ch.signal.wait(host.clock.until(min(deadlines)), generation)
        finally:
            self.stop()

    def stop(self) -> None:
        greenlet = self._script_greenlet
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)

    # ------------------------------------------------------------------ the script

    def _run_script(self) -> None:
        try:
            for action in self.script.actions:
                if self.host.channel.hung_up:
                    return
                self._do(action)
        except _ScriptStopped as stop:
            self.host.caller_note(str(stop))

    def _wait_until(self, deadline: float, done: Callable[[], bool]) -> bool:
        ch, clock = self.host.channel, self.host.clock
        while True:
            generation = ch.signal.generation()
            if done():
                return True
            if ch.hung_up:
                raise _ScriptStopped("the call ended")
            if clock.now() >= deadline:
                return False
            ch.signal.wait(clock.until(deadline), generation)

    def _pause(self, seconds: float) -> None:
        """Move the cursor ``seconds`` on and wait until the clock gets there."""
        self.cursor += seconds
        self._wait_until(self.cursor, lambda: False)

    def _do(self, action: Action) -> None:
        host, ch = self.host, self.host.channel
        if isinstance(action, Wait | Silence):
            self._pause(action.seconds)
        elif isinstance(action, WaitForApp):
            key = (action.app, action.started)
            if not self._wait_until(self.cursor + action.timeout,
                                    lambda: len(ch.app_times.get(key, ())) >= action.nth):
                raise _ScriptStopped(f"{action} timed out")
            self.cursor = max(self.cursor, ch.app_times[key][action.nth - 1])
        elif isinstance(action, WaitForCommand):
            if not self._wait_until(self.cursor + action.timeout, lambda: host.commands_received >= action.n):
                raise _ScriptStopped(f"{action} timed out")
            self.cursor = max(self.cursor, host.command_time(action.n - 1))
        elif isinstance(action, Press):
            for index, digit in enumerate(action.digits):
                if index:
                    self._pause(action.gap)
                ch.receive_dtmf(Dtmf(digit, action.duration_ms, action.source))
        elif isinstance(action, Speak):
            self._speak(action)
        elif isinstance(action, Hangup):
            ch.hangup(action.cause, by="caller")

    def _speak(self, action: Speak) -> None:
        host, ch = self.host, self.host.channel
        if action.wait_for_record and ch.current_app != "record":
            before = len(ch.app_times.get(("record", True), ()))
            if not self._wait_until(self.cursor + action.timeout,
                                    lambda: len(ch.app_times.get(("record", True), ())) > before):
                raise _ScriptStopped(f"{action} found no recording to speak into")
            self.cursor = max(self.cursor, ch.app_times[("record", True)][before])
        end = say(host, load_pcm8k(action.wav_path), action.text, at=self.cursor)
        if action.block:
            self.cursor = end
            self._wait_until(end, lambda: False)


def say(host: CallerHost, samples: np.ndarray, text: str | None = None, *, at: float | None = None) -> float:
    """The caller starts saying ``samples`` (at simulated second ``at``, default now);
    returns when they will be done."""
    segment = host.line.say(host.clock.now() if at is None else at, samples, text)
    host.channel.signal.notify()
    return segment.end
