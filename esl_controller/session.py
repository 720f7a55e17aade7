"""`CallSession`: one call driven over FreeSWITCH's outbound Event Socket.

It implements `ivr_flows.call.Call`, so a flow drives the call through plain blocking
methods from the call's own greenlet.  What it guarantees (each point is a greenswitch
defect our layer must not have, see ``tests/esl/test_esl_greenswitch_defects.py``):

* every wait has a timeout (`CommandTimeout`), and a ``-ERR`` reply raises `CommandError`;
* each ``execute`` is tagged with a fresh ``Event-UUID`` and paired with the
  CHANNEL_EXECUTE_COMPLETE whose ``Application-UUID`` echoes it, never by application name;
* internal pairing runs before user event handlers, so ``on("CHANNEL_EXECUTE_COMPLETE", …)``
  cannot break the blocking helpers;
* a caller hangup (CHANNEL_HANGUP, a disconnect notice or the socket closing) raises one
  `CallGone` in every waiter at once;
* ``play_and_get_digits`` never sends an argument it was not given (no ``None`` transfer
  target), and uses a fresh result variable each time so stale channel variables cannot be
  mistaken for this input.

DTMF: FreeSWITCH emits a DTMF event when a digit is *consumed* by whatever reads the
channel, and for ``play_and_get_digits`` and terminators those events often arrive *after*
the application's completion (traces ``d1``, ``c2``, ``f2``).  Digits that a running media
application consumed, and the ones its completion reports, are therefore kept out of the
caller's DTMF queue; only digits pressed while no media application runs are queued
(type-ahead).

Start-up follows the safety rules measured on FreeSWITCH (``docs/freeswitch.md``): ``connect``
(refusing sync mode, and refusing a call that is no longer in our ``socket`` application, e.g.
one the start-up watchdog already moved while this process was hung), then ``sched_cancel`` as
the first application, ``myevents``, ``linger``, and the dead-man's switch (`arm_deadman`).
``socket_resume`` is set to false before a transfer or bridge, calls end with
``call-command: hangup``.

Control: FreeSWITCH tells us when the call leaves our ``socket`` application (its
CHANNEL_EXECUTE_COMPLETE).  When we did not cause that (a watchdog or someone else moved the
call), every waiter wakes with `ControlLost` and no further command touches the channel;
`release` then lets go of it without disturbing it.  After a ``transfer`` of ours,
`transfer_verdict` says whether FreeSWITCH found the extension (``routed``) or hung the caller
up (its hangup cause, e.g. ``NO_ROUTE_DESTINATION``).
"""

from __future__ import annotations

import itertools
import socket
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.event import Event as GEvent
from gevent.queue import Empty, Queue

from esl_controller.connection import EslConnection
from esl_controller.errors import CallGone, CommandError, CommandTimeout, ControlLost, SyncModeRefused
from esl_controller.protocol import Event, Frame, ascii_length, encode_command, encode_execute
from ivr_flows.call import (
    BridgeResult,
    CallInfo,
    DigitsResult,
    DigitsStatus,
    PlaybackResult,
    PlaybackStop,
    RecordResult,
    RecordStop,
)

# Applications that read the caller's audio/DTMF while they run.
MEDIA_APPS = frozenset({
    "playback", "speak", "play_and_get_digits", "record", "read", "say", "bridge",
    "play_and_detect_speech", "sleep", "endless_playback",
})
_GONE = object()
_seq = itertools.count(1)


@dataclass(slots=True)
class SessionSettings:
    """Timeouts and start-up choices for one call."""

    command_timeout: float = 5.0        # a reply to any command
    app_timeout: float = 300.0          # an application without a better estimate
    linger_seconds: int = 30            # FreeSWITCH keeps the socket this long after hangup
    dtmf_swallow_seconds: float = 1.5   # late DTMF events of a finished app are dropped this long
    max_bridge_seconds: float = 4 * 3600.0
    transfer_verdict_seconds: float = 3.0   # how long to watch a transfer for FreeSWITCH's routing result


@dataclass(frozen=True, slots=True)
class DeadmanTarget:
    """Where FreeSWITCH moves the caller when this process stops re-arming (`CallSession.arm_deadman`)."""

    seconds: int
    extension: str
    dialplan: str = "XML"
    context: str | None = None          # None: the context the call is in


@dataclass(slots=True)
class _AppWait:
    """A pending application execution, keyed by the Event-UUID we sent."""

    app: str
    result: AsyncResult
    survive_hangup: bool = False
    media: bool = False
    broken: bool = False
    consumed: list[str] = field(default_factory=list)
    result_var: str = ""      # play_and_get_digits: the variable holding the digits
    terminators: str = ""     # play_and_get_digits: keys that end the input
    started: bool = False     # FreeSWITCH reported its CHANNEL_EXECUTE


class CallSession:
    """One call on an outbound ESL socket; implements `ivr_flows.call.Call`."""

    def __init__(self, sock: socket.socket, address: Any = None, *, settings: SessionSettings | None = None,
                 log: Any = None) -> None:
        import structlog

        self.settings = settings or SessionSettings()
        self.address = address
        self.log = log or structlog.get_logger("esl_controller.session")
        self._conn = EslConnection(sock, on_event=self._on_event, on_disconnect_notice=self._on_notice,
                                   on_close=self._on_close, log=self.log)
        self.channel_data: dict[str, str] = {}
        self.uuid = ""
        self._info: CallInfo | None = None
        self._apps: dict[str, _AppWait] = {}
        self._media_running = 0
        self._dtmf: Queue = Queue()
        self._swallow: deque[tuple[str, float, bool]] = deque()   # (digits, deadline, optional)
        self._handlers: dict[str, list[Callable[[Event], None]]] = {}
        self._jobs: dict[str, AsyncResult] = {}
        self._jobs_subscribed = False
        self._gone: CallGone | None = None
        self.gone_event = GEvent()
        self.hangup_cause = ""
        self.lingering = False
        self.answered_at: float | None = None
        self.hangup_at: float | None = None
        self.connected_at = time.time()
        self.transferred = False
        self.context = ""                   # the dialplan context the call is in (Caller-Context)
        self.in_socket_app = False          # FreeSWITCH runs our socket application for this call
        self._leaving = False               # we are moving the call out of the socket app ourselves
        self.control_lost: ControlLost | None = None
        self.bridging = False               # inside a bridge (socket_resume=false: a crash keeps it up)
        self.handed_back = False            # returned to the dialplan on purpose (resume + exit)
        self.released = False               # let go of without a command that changes the call
        self._verdict: AsyncResult | None = None
        self._deadman_task = ""             # the FreeSWITCH scheduler task of our dead-man's switch
        self._deadman_command = ""
        self._terminators: str | None = None
        self._live_writes = False
        self._stale_terminator = False
        self.last_progress = time.monotonic()
        self.wait_deadline: float | None = None
        self.commands_sent = 0
        self._conn.start()

    # ================================================================== start and end

    def start(self, deadman: DeadmanTarget | None = None) -> CallInfo:
        """``connect``, refuse sync mode (and a call no longer in our socket app), cancel the start-up
        watchdog, ``myevents``, ``linger``; then arm the dead-man's switch (`arm_deadman`) once
        ``sched_cancel`` has run: it runs on the channel's thread, ``api`` at once, and the cancel
        would otherwise take our new task with the watchdog (both are grouped by the call's uuid)."""
        reply = self._command("connect")
        data = reply.headers
        self.channel_data = data
        self.uuid = data.get("Unique-ID") or data.get("Channel-Unique-ID") or ""
        mode, control = data.get("Socket-Mode", ""), data.get("Control", "")
        if mode != "async" or control != "full":
            raise SyncModeRefused(
                f"socket mode {mode or '?'}/{control or '?'}: the dialplan must say "
                f"'socket <host:port> async full'")
        self.context = data.get("Caller-Context") or data.get("Channel-Context") or ""
        running = data.get("variable_current_application")
        if running is not None and running != "socket":
            # Connected too late: FreeSWITCH's watchdog (or something else) already moved the call.
            where = (f"{data.get('Caller-Destination-Number') or '?'}@{self.context or '?'} "
                     f"running {running or 'nothing'}")
            self._mark_lost(where)
            raise ControlLost(where)
        self.in_socket_app = True
        # Pipelined: the first application is sched_cancel (the dialplan's watchdog).
        cancel_uuid = str(uuidlib.uuid4())
        cancel = _AppWait("sched_cancel", AsyncResult())
        self._apps[cancel_uuid] = cancel
        slots = self._conn.send_many([
            encode_execute("sched_cancel", None, event_uuid=cancel_uuid),
            b"myevents\n\n",
            f"linger {int(self.settings.linger_seconds)}\n\n".encode(),
        ])
        self.commands_sent += 3
        try:
            for what, slot in zip(("sched_cancel", "myevents", "linger"), slots, strict=True):
                frame = self._wait_slot(slot, what)
                if not frame.ok:
                    raise CommandError(what, frame.reply_text)
            if deadman is not None and deadman.seconds > 0:
                self._wait_app(cancel_uuid, cancel, self.settings.command_timeout)
                self.arm_deadman(deadman.seconds, deadman.extension, dialplan=deadman.dialplan,
                                 context=deadman.context)
        finally:
            self._apps.pop(cancel_uuid, None)
        self._info = self._read_info(data)
        return self._info

    @staticmethod
    def _read_info(data: dict[str, str]) -> CallInfo:
        return CallInfo(
            uuid=data.get("Unique-ID", ""),
            caller_number=data.get("Caller-Caller-ID-Number", ""),
            caller_name=data.get("Caller-Caller-ID-Name", ""),
            destination_number=data.get("Caller-Destination-Number", ""),
            domain_uuid=data.get("variable_domain_uuid", ""),
            domain_name=data.get("variable_domain_name", ""),
            context=data.get("Caller-Context") or data.get("Channel-Context") or "",
            variables={k[9:]: v for k, v in data.items() if k.startswith("variable_")},
        )

    @property
    def info(self) -> CallInfo:
        if self._info is None:
            raise RuntimeError("session not started")
        return self._info

    @property
    def gone(self) -> bool:
        return self._gone is not None

    def hand_back(self) -> None:
        """Deliberately return the call to the dialplan (``resume`` + ``exit``): it reaches the fallback.

        Only while the call is in our socket application and not bridged: ``resume`` on a call
        elsewhere would leave it in ``CS_RESET`` (dead air), and would cut a live bridge; such a
        call is released instead."""
        if self._conn.closed:
            return
        if not self.in_socket_app or self.bridging or self.control_lost is not None:
            self.release()
            return
        self._leaving = True
        self.handed_back = True
        self.disarm_deadman()
        try:
            if not self.gone:
                self._conn.send(b"resume\n\n", timeout=self.settings.command_timeout)
            self._conn.send(b"exit\n\n", timeout=self.settings.command_timeout)
        except (CallGone, CommandTimeout):
            pass
        self._conn.join(timeout=2.0)
        self._conn.close("handed back")

    def release(self) -> None:
        """Let go of the call without disturbing it: our dead-man's switch off, ``socket_resume=false``
        (so closing the socket changes nothing for the channel), ``exit``."""
        if self._conn.closed:
            return
        self._leaving = True
        self.released = True
        try:
            if not self.gone:
                commands = [f"api uuid_setvar {self.uuid} socket_resume false\n\n".encode()]
                if self._deadman_task:
                    commands.insert(0, f"api sched_del {self._deadman_task}\n\n".encode())
                    self._deadman_task = ""
                slots = self._conn.send_many(commands)
                for slot in slots:
                    slot.get(timeout=self.settings.command_timeout)
            self._conn.send(b"exit\n\n", timeout=self.settings.command_timeout)
        except (CallGone, CommandTimeout, gevent.Timeout):
            pass
        self._conn.join(timeout=2.0)
        self._conn.close("released")

    def finish(self) -> None:
        """End of our control: ``exit`` (FreeSWITCH closes), then close the socket."""
        if self._conn.closed:
            return
        if self.control_lost is not None or (self.in_socket_app and not self.gone and not self._leaving):
            # Not ended by a hangup, a transfer or a hand-back of ours: let go without touching it.
            self.release()
            return
        try:
            self._conn.send(b"exit\n\n", timeout=self.settings.command_timeout)
        except (CallGone, CommandTimeout):
            pass
        self._conn.join(timeout=2.0)
        self._conn.close("finished")

    def close(self, reason: str = "closed by controller") -> None:
        self._conn.close(reason)

    # ================================================================== low level

    def _progress(self) -> None:
        self.last_progress = time.monotonic()

    def _wait_slot(self, slot: AsyncResult, what: str) -> Frame:
        try:
            frame = slot.get(timeout=self.settings.command_timeout)
        except gevent.Timeout:
            raise CommandTimeout(f"no reply to {what} in {self.settings.command_timeout:.1f}s") from None
        self._progress()
        return frame

    def _command(self, command: str, headers: Any = (), body: str | None = None) -> Frame:
        if self._conn.closed or self.control_lost is not None:
            raise self._gone or CallGone("disconnected", self._conn.close_reason)
        self.commands_sent += 1
        frame = self._conn.send(encode_command(command, headers, body), timeout=self.settings.command_timeout)
        self._progress()
        return frame

    def raise_if_gone(self) -> None:
        if self._gone is not None:
            raise self._gone

    def api(self, command: str, *, timeout: float | None = None) -> str:
        """Run ``api <command>``; returns the body, raises `CommandError` on ``-ERR``."""
        if self._conn.closed or self.control_lost is not None:
            raise self._gone or CallGone("disconnected")
        self.commands_sent += 1
        frame = self._conn.send(encode_command(f"api {command}"),
                                timeout=timeout or self.settings.command_timeout)
        self._progress()
        if not frame.ok:
            raise CommandError(f"api {command}", frame.reply_text)
        return frame.reply_text

    def bgapi(self, command: str, *, timeout: float = 30.0) -> str:
        """Run ``bgapi <command>`` and wait (with a timeout) for its BACKGROUND_JOB result."""
        if not self._jobs_subscribed:
            frame = self._command("event plain BACKGROUND_JOB")
            if not frame.ok:
                raise CommandError("event plain BACKGROUND_JOB", frame.reply_text)
            self._jobs_subscribed = True
        frame = self._command(f"bgapi {command}")
        if not frame.ok:
            raise CommandError(f"bgapi {command}", frame.reply_text)
        job = frame.headers.get("Job-UUID") or frame.reply_text.rpartition(" ")[2]
        slot = self._jobs.setdefault(job, AsyncResult())
        try:
            text = slot.get(timeout=timeout)
        except gevent.Timeout:
            raise CommandTimeout(f"bgapi {command}: no result in {timeout:.1f}s") from None
        finally:
            self._jobs.pop(job, None)
        if text.startswith("-ERR"):
            raise CommandError(f"bgapi {command}", text.rstrip("\n"))
        return text

    def execute(self, app: str, arg: str | None = None, *, timeout: float | None = None,
                survive_hangup: bool = False) -> Event:
        """Execute an application and wait for *its* CHANNEL_EXECUTE_COMPLETE."""
        event_uuid, wait = self._start_app(app, arg, survive_hangup=survive_hangup)
        return self._wait_app(event_uuid, wait, timeout)

    def execute_nowait(self, app: str, arg: str | None = None) -> None:
        """Queue an application behind the current one without waiting for it (event-lock keeps order)."""
        if self._gone is not None:
            raise self._gone
        if self._conn.closed:
            raise CallGone("disconnected", self._conn.close_reason)
        self.commands_sent += 1
        slot = self._conn.send_nowait(encode_execute(app, arg, event_uuid=str(uuidlib.uuid4())))
        slot.rawlink(lambda s, app=app: self._check_nowait_reply(app, s))

    def _check_nowait_reply(self, app: str, slot: AsyncResult) -> None:
        if slot.successful() and not slot.value.ok:
            self.log.warning("esl.app_refused", app=app, reply=slot.value.reply_text)

    def _start_app(self, app: str, arg: str | None, *, survive_hangup: bool, result_var: str = "",
                   terminators: str = "") -> tuple[str, _AppWait]:
        if self._gone is not None:
            raise self._gone
        event_uuid = str(uuidlib.uuid4())
        media = app in MEDIA_APPS
        wait = _AppWait(app, AsyncResult(), survive_hangup=survive_hangup, media=media, result_var=result_var,
                        terminators=terminators)
        self._apps[event_uuid] = wait
        if media:
            self._media_running += 1
        try:
            self.commands_sent += 1
            frame = self._conn.send(encode_execute(app, arg, event_uuid=event_uuid),
                                    timeout=self.settings.command_timeout)
        except BaseException:
            self._end_app(event_uuid)
            raise
        self._progress()
        if not frame.ok:
            self._end_app(event_uuid)
            raise CommandError(f"execute {app}", frame.reply_text)
        return event_uuid, wait

    def _end_app(self, event_uuid: str) -> None:
        wait = self._apps.pop(event_uuid, None)
        if wait is not None and wait.media:
            self._media_running -= 1

    def _wait_app(self, event_uuid: str, wait: _AppWait, timeout: float | None) -> Event:
        limit = timeout if timeout is not None else self.settings.app_timeout
        self.wait_deadline = time.monotonic() + limit
        try:
            event = wait.result.get(timeout=limit)
        except gevent.Timeout:
            if wait.media and not self.gone:
                self._try_break()
            raise CommandTimeout(f"{wait.app} did not complete in {limit:.1f}s") from None
        finally:
            self.wait_deadline = None
            self._end_app(event_uuid)
        self._progress()
        return event

    def _try_break(self) -> None:
        try:
            self.api(f"uuid_break {self.uuid} all")
        except (CommandError, CommandTimeout, CallGone):
            pass

    # ================================================================== events

    def on(self, event_name: str, handler: Callable[[Event], None]) -> None:
        """Register a handler (``"*"`` for all events).  It runs in the reader greenlet: it
        must not block.  Internal pairing runs first, so handlers cannot break waits."""
        self._handlers.setdefault(event_name, []).append(handler)

    def _on_event(self, event: Event) -> None:
        self._progress()
        name = event.name
        if name == "BACKGROUND_JOB":
            slot = self._jobs.setdefault(event.peek("Job-UUID") or "", AsyncResult())
            slot.set(event.payload.decode("utf-8", errors="replace"))
        else:
            unique_id = event.peek("Unique-ID")
            if self.uuid and unique_id and unique_id != self.uuid:
                return  # another leg's event (full mode without myevents filtering)
            if name == "CHANNEL_EXECUTE_COMPLETE":
                wait = self._apps.get(event.peek("Application-UUID") or "")
                if wait is not None and not wait.result.ready():
                    self._swallow_late_digits(wait, event)
                    wait.result.set(event)
                elif event.peek("Application") == "socket":
                    self._left_socket_app(event)
            elif name == "CHANNEL_EXECUTE":
                wait = self._apps.get(event.peek("Application-UUID") or "")
                if wait is not None:
                    wait.started = True
                elif self._verdict is not None and not self.in_socket_app and not self._verdict.ready():
                    self._verdict.set("routed")   # the dialplan found the transfer's extension
            elif name == "DTMF":
                self._on_dtmf(event.peek("DTMF-Digit") or "")
            elif name == "CHANNEL_HANGUP":
                self.hangup_at = time.time()
                cause = event.peek("Hangup-Cause") or ""
                if self._verdict is not None and not self._verdict.ready():
                    self._verdict.set(cause or "hangup")
                self._mark_gone("hangup", cause)
            elif name == "CHANNEL_ANSWER":
                self.answered_at = time.time()
        if self._handlers:
            for key in (name, "*"):
                for handler in self._handlers.get(key, ()):
                    try:
                        handler(event)
                    except Exception:
                        self.log.exception("esl.user_handler_failed", event=name)

    def _left_socket_app(self, event: Event) -> None:
        """The socket application returned: after our transfer that is expected; otherwise the call
        was taken from us (a watchdog or someone else moved it) and is no longer ours to touch."""
        self.in_socket_app = False
        if self._leaving or self.gone:
            return
        where = (f"{event.get('Caller-Destination-Number') or '?'}@{event.get('Caller-Context') or '?'}"
                 f" ({event.get('Channel-State') or '?'})")
        self._mark_lost(where)

    def _mark_lost(self, where: str) -> None:
        if self.control_lost is not None:
            return
        self.control_lost = ControlLost(where)
        self.log.warning("esl.control_lost", where=where)
        if self._gone is None:
            self._gone = self.control_lost
            self.gone_event.set()
            self._dtmf.put(_GONE)
        self._fail_all(self.control_lost)

    def _on_notice(self, frame: Frame) -> None:
        if frame.headers.get("Content-Disposition") == "linger":
            self.lingering = True
            self._mark_gone("hangup", self.hangup_cause)
        else:
            self._mark_gone("disconnected", "disconnect notice")
            self._fail_all(self._gone or CallGone("disconnected"))

    def _on_close(self, reason: str) -> None:
        self._mark_gone("disconnected", reason)
        self._fail_all(CallGone("disconnected", reason))

    def _mark_gone(self, reason: str, cause: str) -> None:
        if cause and not self.hangup_cause:
            self.hangup_cause = cause
        if self._gone is not None:
            return
        self._gone = CallGone(reason, cause)
        self.gone_event.set()
        self._dtmf.put(_GONE)
        for wait in list(self._apps.values()):
            if not wait.survive_hangup and not wait.result.ready():
                wait.result.set_exception(self._gone)

    def _fail_all(self, gone: CallGone) -> None:
        for wait in list(self._apps.values()):
            if not wait.result.ready():
                wait.result.set_exception(gone)
        for slot in list(self._jobs.values()):
            if not slot.ready():
                slot.set_exception(gone)

    # ================================================================== DTMF

    def _on_dtmf(self, digit: str) -> None:
        if not digit:
            return
        for wait in self._apps.values():
            if wait.media and not wait.result.ready():
                wait.consumed.append(digit)   # the running app read it
                return
        now = time.monotonic()
        while self._swallow:
            expected, deadline, optional = self._swallow[0]
            if deadline < now:
                self._swallow.popleft()
                continue
            if digit in expected:
                self._swallow.popleft()       # a finished app's digit, reported late
                return
            if not optional:
                break
            self._swallow.popleft()
        self._dtmf.put(digit)

    def _swallow_late_digits(self, wait: _AppWait, event: Event) -> None:
        """Expect the DTMF events of digits this app consumed that have not arrived yet."""
        if not wait.media:
            return
        reported = ""
        if wait.result_var:
            reported = (event.get(f"variable_{wait.result_var}")
                        or event.get(f"variable_{wait.result_var}_invalid") or "")
        elif wait.app in ("playback", "record", "speak"):
            reported = event.get("variable_playback_terminator_used") or ""
        seen = "".join(wait.consumed)
        late = reported[len(seen):] if reported.startswith(seen) else ""
        deadline = time.monotonic() + self.settings.dtmf_swallow_seconds
        self._swallow.extend((d, deadline, False) for d in late)
        if wait.terminators and len(seen) <= len(reported):
            self._swallow.append((wait.terminators, deadline, True))   # the key that ended the input

    def read_dtmf(self, timeout: float) -> str | None:
        """Next digit pressed while no media application ran, or None after ``timeout``."""
        try:
            item = self._dtmf.get(timeout=timeout)
        except Empty:
            self.raise_if_gone()
            return None
        if item is _GONE:
            self._dtmf.put(_GONE)
            raise self._gone or CallGone("hangup")
        return item

    def flush_dtmf(self) -> str:
        """Drop queued digits (ours and FreeSWITCH's); returns what was dropped."""
        dropped = []
        while True:
            try:
                item = self._dtmf.get_nowait()
            except Empty:
                break
            if item is _GONE:
                self._dtmf.put(_GONE)
                break
            dropped.append(item)
        if not self.gone:
            self.execute_nowait("flush_dtmf")
        return "".join(dropped)

    # ================================================================== call control

    def answer(self) -> None:
        self.execute("answer", timeout=self.settings.command_timeout * 2)

    def _prepare_terminators(self, terminators: str) -> None:
        wanted = terminators or "none"
        if wanted != self._terminators:
            self.execute_nowait("set", f"playback_terminators={wanted}")
            self._terminators = wanted
        if self._stale_terminator:
            self.execute_nowait("unset", "playback_terminator_used")
            self._stale_terminator = False

    def _note_terminator(self, event: Event) -> str | None:
        term = event.get("variable_playback_terminator_used") or None
        self._stale_terminator = bool(term)
        return term

    def playback(self, path: str, *, terminators: str = "", timeout: float | None = None) -> PlaybackResult:
        self._prepare_terminators(terminators)
        event_uuid, wait = self._start_app("playback", path, survive_hangup=False)
        event = self._wait_app(event_uuid, wait, timeout)
        return self._playback_result(event, wait)

    def speak(self, text: str, *, engine: str = "flite", voice: str = "kal", terminators: str = "",
              timeout: float | None = None) -> PlaybackResult:
        self._prepare_terminators(terminators)
        event_uuid, wait = self._start_app("speak", f"{engine}|{voice}|{text}", survive_hangup=False)
        event = self._wait_app(event_uuid, wait, timeout)
        return self._playback_result(event, wait)

    def _playback_result(self, event: Event, wait: _AppWait) -> PlaybackResult:
        response = event.get("Application-Response", "")
        term = self._note_terminator(event)
        played = event.get("variable_playback_ms")
        played_ms = ascii_length(played) if played else None
        if response == "FILE NOT FOUND":
            stop = PlaybackStop.NOT_FOUND
        elif response == "PLAYBACK ERROR":
            stop = PlaybackStop.ERROR
        elif term:
            stop = PlaybackStop.TERMINATOR
        elif wait.broken:
            stop = PlaybackStop.BROKEN
        else:
            stop = PlaybackStop.COMPLETED
        return PlaybackResult(stop, term, played_ms)

    def play_and_get_digits(self, prompt: str, *, min_digits: int = 1, max_digits: int = 1, tries: int = 1,
                            timeout_ms: int = 5000, terminators: str = "#",
                            invalid_prompt: str = "silence_stream://250", regex: str = "",
                            digit_timeout_ms: int = 3000, timeout: float | None = None,
                            transfer_on_failure: str | None = None) -> DigitsResult:
        var = f"ivr_digits_{next(_seq)}"
        args = [str(min_digits), str(max_digits), str(tries), str(timeout_ms), terminators or "none",
                prompt, invalid_prompt or "silence_stream://250", var, regex or r"\d+", str(digit_timeout_ms)]
        for value in args:
            if not value or " " in value or "\n" in value:
                raise ValueError(f"play_and_get_digits argument {value!r} is empty or has a space")
        if transfer_on_failure:          # only when given: greenswitch sent the literal "None"
            args.append(transfer_on_failure)   # "ext [dialplan [context]]", the rest of the line
        limit = timeout if timeout is not None else (
            120.0 + tries * (timeout_ms + digit_timeout_ms * max_digits) / 1000.0)
        event_uuid, wait = self._start_app("play_and_get_digits", " ".join(args), survive_hangup=False,
                                           result_var=var, terminators=terminators)
        event = self._wait_app(event_uuid, wait, limit)
        result = event.get("variable_read_result", "")
        digits = event.get(f"variable_{var}") or ""
        invalid = event.get(f"variable_{var}_invalid") or ""
        if result == "success" and digits:
            return DigitsResult(DigitsStatus.SUCCESS, digits=digits)
        if invalid or digits:    # a regex miss (<var>_invalid), or fewer digits than min (<var> set, failure)
            return DigitsResult(DigitsStatus.INVALID, invalid=invalid or digits)
        return DigitsResult(DigitsStatus.TIMEOUT)

    def record(self, path: str, *, max_seconds: int = 60, silence_threshold: int = 200, silence_seconds: int = 3,
               terminators: str = "#", timeout: float | None = None, live: bool = False) -> RecordResult:
        """Record the caller.  ``live``: FreeSWITCH writes every 20 ms frame as it comes (by default it
        buffers 64 KiB, ~4 s of audio, so a reader tailing the file hears nothing for 4 s)."""
        if " " in path or "\n" in path:
            raise ValueError(f"record path may not contain spaces: {path!r}")
        if live and not self._live_writes:
            self.execute_nowait("set", "enable_file_write_buffering=false")
            self._live_writes = True
        self._prepare_terminators(terminators)
        arg = f"{path} {int(max_seconds)} {int(silence_threshold)} {int(silence_seconds)}"
        event_uuid, wait = self._start_app("record", arg, survive_hangup=True)
        event = self._wait_app(event_uuid, wait, timeout if timeout is not None else max_seconds + 30.0)
        term = self._note_terminator(event)
        ms = event.get("variable_record_ms") or "0"
        size = event.get("variable_record_file_size")
        if self.gone:
            stop = RecordStop.HANGUP
        elif term:
            stop = RecordStop.TERMINATOR
        elif event.get("variable_silence_hits_exhausted") == "true":
            stop = RecordStop.SILENCE
        elif wait.broken:
            stop = RecordStop.BROKEN
        else:
            stop = RecordStop.MAX_LENGTH
        return RecordResult(path=path, duration_ms=ascii_length(ms) or 0, stop=stop, terminator=term,
                            size_bytes=ascii_length(size) if size else None)

    def transfer(self, extension: str, *, dialplan: str = "XML", context: str | None = None) -> None:
        """Transfer while keeping the socket: our dead-man's switch off and ``socket_resume=false``
        first (the CS_RESET trap).  ``context`` defaults to the one the call is in.  FreeSWITCH's
        verdict (the extension found, or the caller hung up with NO_ROUTE_DESTINATION) comes in
        later: `transfer_verdict`."""
        target = f"{extension} {dialplan} {context or self.context or 'default'}"
        self._leaving = True
        self._verdict = AsyncResult()
        self.disarm_deadman()
        self.execute_nowait("set", "socket_resume=false")
        event_uuid, wait = self._start_app("transfer", target, survive_hangup=False)
        try:
            self._wait_app(event_uuid, wait, self.settings.command_timeout * 2)
        except CallGone:
            # The hangup (or the socket's end) raced the transfer's completion: it is a transfer
            # when FreeSWITCH had started running it.
            self.transferred = wait.started
            raise
        self.transferred = True

    def transfer_verdict(self, timeout: float | None = None) -> str:
        """After `transfer`: ``routed`` when the dialplan ran the extension, the hangup cause when the
        call ended before any of it ran (``NO_ROUTE_DESTINATION``: no such extension in that context;
        ``NORMAL_CLEARING``: the caller hung up), ``unknown`` when FreeSWITCH did not say in time."""
        if self._verdict is None:
            return "unknown"
        wait = self.settings.transfer_verdict_seconds if timeout is None else timeout
        try:
            return str(self._verdict.get(timeout=wait))
        except gevent.Timeout:
            return "unknown"

    def divert(self, extension: str, *, dialplan: str = "XML", context: str | None = None) -> None:
        """Transfer waiting for replies only: works in sync mode too (where ``sendmsg`` replies when the
        application is done and no events were asked for).  ``socket_resume=false`` first."""
        self._leaving = True
        target = f"{extension} {dialplan} {context or self.context or 'default'}"
        for app, arg in (("set", "socket_resume=false"), ("transfer", target)):
            frame = self._command_bytes(encode_execute(app, arg, event_uuid=str(uuidlib.uuid4())))
            if not frame.ok:
                raise CommandError(f"execute {app}", frame.reply_text)
        self.transferred = True

    def _command_bytes(self, data: bytes) -> Frame:
        if self._conn.closed:
            raise self._gone or CallGone("disconnected", self._conn.close_reason)
        self.commands_sent += 1
        frame = self._conn.send(data, timeout=self.settings.command_timeout)
        self._progress()
        return frame

    def bridge(self, target: str, *, timeout: float | None = None, hangup_after_bridge: bool = True) -> BridgeResult:
        """Bridge to ``target``; a crash of ours cannot tear the bridge down (``socket_resume=false``),
        and a hang of ours cannot either (the dead-man's switch is off while the bridge lasts)."""
        self.bridging = True
        self.disarm_deadman()
        self.execute_nowait("set", "socket_resume=false")
        self.execute_nowait("set", f"hangup_after_bridge={'true' if hangup_after_bridge else 'false'}")
        try:
            event = self.execute("bridge", target, timeout=timeout or self.settings.max_bridge_seconds,
                                 survive_hangup=True)
        finally:
            self.bridging = False
        disposition = event.get("variable_originate_disposition") or event.get("Application-Response") or ""
        cause = event.get("variable_bridge_hangup_cause") or event.get("variable_last_bridge_hangup_cause") or ""
        answered = disposition in ("SUCCESS", "ANSWER") or bool(event.get("variable_bridge_hangup_cause"))
        if not self.gone:
            self.execute_nowait("set", "socket_resume=true")
            self.rearm_deadman()
        return BridgeResult(answered=answered, disposition=disposition, hangup_cause=cause)

    # ================================================================== the dead-man's switch

    def arm_deadman(self, seconds: int, extension: str, *, dialplan: str = "XML", context: str | None = None) -> None:
        """A FreeSWITCH-side task that moves the caller to ``extension`` in ``seconds`` unless we re-arm it
        first (`rearm_deadman`, by `esl_controller.deadman.DeadMansSwitch`): a hung controller process
        stops re-arming, and the caller reaches a person instead of dead air.  Grouped by the call's
        uuid, so the fallback's ``sched_cancel`` and the channel's end remove it."""
        self._deadman_command = (f"sched_api +{int(seconds)} {self.uuid} uuid_transfer {self.uuid} {extension} "
                                 f"{dialplan} {context or self.context or 'default'}")
        self.rearm_deadman()

    def rearm_deadman(self, *, verify: bool = False) -> None:
        """Schedule a fresh task, then delete the previous one (never a moment unarmed); no waiting.
        With ``verify``, first ask FreeSWITCH whether the call is still in our socket application."""
        if not self._deadman_command or self._conn.closed or self.gone or self.bridging or self._leaving:
            return
        if verify:
            try:
                slot = self._conn.send_nowait(f"api uuid_getvar {self.uuid} current_application\n\n".encode())
            except CallGone:
                return
            slot.rawlink(self._rearm_if_ours)
            return
        commands = [f"api {self._deadman_command}\n\n".encode()]
        if self._deadman_task:
            commands.append(f"api sched_del {self._deadman_task}\n\n".encode())
        try:
            slots = self._conn.send_many(commands)
        except CallGone:
            return
        slots[0].rawlink(self._deadman_armed)

    def _rearm_if_ours(self, slot: AsyncResult) -> None:
        if slot.successful() and slot.value.reply_text.strip() == "socket":
            self.rearm_deadman()
        else:
            self.log.warning("esl.deadman_not_rearmed", reason="the call is no longer in the socket application")

    def _deadman_armed(self, slot: AsyncResult) -> None:
        if not slot.successful():
            return
        text = slot.value.reply_text
        if text.startswith("+OK Added:"):
            task = text.rpartition(" ")[2].strip()
            if self._leaving or self.bridging or self.gone:
                # Disarmed while this one was on its way: take it back at once.
                if not self._conn.closed:
                    self._conn.send_nowait(f"api sched_del {task}\n\n".encode())
                return
            self._deadman_task = task
        else:
            self.log.warning("esl.deadman_not_armed", reply=text[:120])

    def disarm_deadman(self) -> None:
        """Delete our dead-man's task (by its id: the channel's other scheduled tasks stay)."""
        task, self._deadman_task = self._deadman_task, ""
        if task and not self._conn.closed and not self.gone:
            try:
                self._conn.send_nowait(f"api sched_del {task}\n\n".encode())
            except CallGone:
                pass

    @property
    def deadman_armed(self) -> bool:
        return bool(self._deadman_task)

    @property
    def deadman_command(self) -> str:
        return self._deadman_command

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """End the call with ``call-command: hangup`` and wait (bounded) for FreeSWITCH to confirm."""
        if self.gone or self._conn.closed:
            return
        frame = self._command("sendmsg", [("call-command", "hangup"), ("hangup-cause", cause)])
        if not frame.ok:
            raise CommandError("hangup", frame.reply_text)
        self.gone_event.wait(timeout=self.settings.command_timeout)

    def get_variable(self, name: str) -> str | None:
        if not name or " " in name:
            raise ValueError(f"bad variable name {name!r}")
        frame = self._command(f"getvar {name}")
        return None if frame.reply_text.startswith("-ERR") else frame.reply_text

    def set_variable(self, name: str, value: str) -> None:
        if not name or " " in name or "=" in name:
            raise ValueError(f"bad variable name {name!r}")
        self.execute("set", f"{name}={value}", timeout=self.settings.command_timeout * 2)

    def break_media(self) -> None:
        """Stop whatever is playing or recording now (``uuid_break``)."""
        for wait in self._apps.values():
            if wait.media:
                wait.broken = True
        self.api(f"uuid_break {self.uuid} all")
