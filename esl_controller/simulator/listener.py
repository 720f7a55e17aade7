"""The outbound Event Socket connection as FreeSWITCH's ``mod_event_socket`` runs it.

One `Listener` per ``socket`` app connection.  A reader greenlet parses what the controller
sends (every command goes to the call's transcript) and a command loop answers in order;
replies are ``command/reply`` frames, ``api`` answers ``api/response``, and events the
subscription wants are written as ``text/event-plain`` as they happen, all under one send
lock so frames never interleave.

* **Async** (``socket … async``): the loop runs in its own greenlet; ``sendmsg`` execute is
  queued for the socket app's park loop and answered ``+OK`` at once.
* **Sync** (no ``async``, ``Socket-Mode: static``): the loop runs inside the socket app, in
  the session greenlet; ``sendmsg`` runs the application first, then replies ``+OK``, then
  sends the events the application fired (trace ``b3``); a ``sendmsg`` with ``async: true``
  is queued and never runs; after a hangup there is a linger notice but no
  CHANNEL_HANGUP_COMPLETE until ``exit``.

The first command must arrive within 25 simulated seconds of the TCP connect, or the
listener gives up.  When the channel is down (after CHANNEL_HANGUP_COMPLETE, or the hangup
itself in sync mode) it sends ``text/disconnect-notice`` ``linger`` and waits for ``exit`` or
the ``linger N`` time, or, without linger, ``disconnect`` and closes.  ``exit`` gives
``+OK bye``, the ``disconnect`` notice with its 67-byte body, and the close.
"""

from __future__ import annotations

import socket
import uuid as uuidlib
from collections.abc import Sequence
from typing import Protocol

import gevent
import structlog
from gevent.lock import Semaphore
from gevent.queue import Empty, Queue

from esl_controller.protocol import (
    encode_api_response,
    encode_channel_data_reply,
    encode_disconnect_notice,
    encode_reply,
)
from esl_controller.simulator.api import ApiHost, run_api
from esl_controller.simulator.channel import Channel, QueuedApp, truthy
from esl_controller.simulator.clock import MAX_REAL_WAIT, SimClock
from esl_controller.simulator.commands import CommandParser, ReceivedCommand
from esl_controller.simulator.errors import SimulatorError
from esl_controller.simulator.events import SimEvent, Subscription, common_headers
from esl_controller.simulator.execution import AppHost, execute
from esl_controller.simulator.faults import Faults
from esl_controller.simulator.records import SentFrame

log = structlog.get_logger(__name__)

FIRST_COMMAND_SECONDS = 25.0
RECV_BYTES = 65536
_EOF = object()
_WAKE = object()
_LINGER_OVER = object()


class ListenerHost(AppHost, ApiHost, Protocol):
    faults: Faults
    max_linger: float

    def command_received(self, command: ReceivedCommand) -> None: ...
    def frame_sent(self, frame: SentFrame) -> None: ...
    def controller_connected(self) -> None: ...
    def listener_ended(self, listener: Listener) -> None: ...
    def next_seq(self) -> int: ...


class Listener:
    """One controller connection (``listener_t``)."""

    def __init__(self, host: ListenerHost, sock: socket.socket, *, async_mode: bool, full: bool) -> None:
        self.host = host
        self.sock = sock
        self.async_mode = async_mode
        self.full = full
        self.sub = Subscription()
        self.connected = False
        self.resume_flag = False
        self.linger: int | None = None           # None: no linger; -1: until exit
        self.ended = False
        self.end_reason = ""
        self.park_pending = False
        self.inbox: Queue = Queue()
        self._parser = CommandParser()
        self._lock = Semaphore()
        self._chunks = host.faults.chunker()
        self._hold: list[SimEvent] | None = None
        self._current: ReceivedCommand | None = None
        self._broken = False
        self._disconnect_handled = False
        self._reader: gevent.Greenlet | None = None
        self._loop_greenlet: gevent.Greenlet | None = None
        self._timer: gevent.Greenlet | None = None
        host.channel.down_hooks.append(self.wake)
        host.channel.sink = self.offer

    @property
    def channel(self) -> Channel:
        return self.host.channel

    @property
    def clock(self) -> SimClock:
        return self.host.clock

    @property
    def resume(self) -> bool:
        """Whether FreeSWITCH resets the channel when this connection ends (``socket_resume``)."""
        return self.resume_flag or truthy(self.channel.vars.get("socket_resume"))

    # ================================================================== lifecycle

    def start(self) -> None:
        """Async mode: reader and command loop in their own greenlets."""
        self._reader = gevent.spawn(self._read_loop)
        self._loop_greenlet = gevent.spawn(self._loop)

    def run_inline(self) -> None:
        """Sync mode: the command loop runs in the calling (session) greenlet until it ends."""
        self._reader = gevent.spawn(self._read_loop)
        self._loop()

    def wake(self) -> None:
        self.inbox.put(_WAKE)

    def close(self, reason: str) -> None:
        """Tear the connection down from outside (the call is being cleaned up)."""
        self._end(reason, notice=False)

    def _read_loop(self) -> None:
        try:
            while True:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    break
                for raw, line, headers, body in self._parser.feed(data):
                    command = ReceivedCommand(raw, line, headers, body, self.clock.now())
                    self.host.command_received(command)
                    self.inbox.put(command)
        except (OSError, SimulatorError) as exc:
            log.debug("sim.reader_stopped", error=str(exc))
        except gevent.GreenletExit:
            return
        self.inbox.put(_EOF)

    def _loop(self) -> None:
        first_deadline = self.clock.now() + FIRST_COMMAND_SECONDS
        first = True
        try:
            while not self.ended:
                limit = self.clock.until(first_deadline) if first else MAX_REAL_WAIT
                try:
                    item = self.inbox.get(timeout=min(limit, MAX_REAL_WAIT))
                except Empty:
                    if first and self.clock.now() >= first_deadline:
                        self._end(f"no command within {FIRST_COMMAND_SECONDS:.0f} s", notice=True)
                    continue
                if item is _EOF:
                    self._end("controller closed the connection", notice=True)
                elif item is _LINGER_OVER:
                    self._end("linger time over", notice=True)
                elif isinstance(item, ReceivedCommand):
                    first = False
                    self._handle(item)
                if not self.ended:
                    self._check_down()
        except gevent.GreenletExit:
            self._end("killed", notice=False)

    def _check_down(self) -> None:
        ch = self.channel
        down = ch.destroyed if self.async_mode else ch.hung_up
        if not down or self._disconnect_handled:
            return
        self._disconnect_handled = True
        if self.linger is None:
            self._end("hangup", notice=True)
            return
        self._write(encode_disconnect_notice(ch.uuid, linger=True, channel_name=ch.name, linger_time=self.linger),
                    "notice", "linger")
        wait = self.linger if self.linger >= 0 else self.host.max_linger
        self._timer = gevent.spawn_later(self.clock.real(wait), self.inbox.put, _LINGER_OVER)

    def _end(self, reason: str, *, notice: bool) -> None:
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        if notice:
            self._write(encode_disconnect_notice(self.channel.uuid, linger=False), "notice", "disconnect")
        self._shutdown()
        if self.channel.sink == self.offer:
            self.channel.sink = None
        if self.wake in self.channel.down_hooks:
            self.channel.down_hooks.remove(self.wake)
        if self._timer is not None:
            self._timer.kill(block=False)
        for greenlet in (self._reader, self._loop_greenlet):
            if greenlet is not None and greenlet is not gevent.getcurrent():
                greenlet.kill(block=False)
        log.debug("sim.listener_ended", reason=reason)
        self.host.listener_ended(self)

    def _shutdown(self) -> None:
        self._broken = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    # ================================================================== writing

    def _write(self, data: bytes, kind: str, name: str) -> bool:
        if self._broken:
            return False
        with self._lock:
            if self._broken:
                return False
            chunks = self._chunks.split(data)
            try:
                for index, chunk in enumerate(chunks):
                    self.sock.sendall(chunk)
                    if index + 1 < len(chunks):
                        gevent.sleep(0)
            except OSError:
                self._broken = True
                self.inbox.put(_EOF)
                return False
        self.host.frame_sent(SentFrame(kind, name, data, self.clock.now(), tuple(len(c) for c in chunks)))
        return True

    def offer(self, event: SimEvent) -> None:
        """An event happened: send it if the subscription wants it."""
        if self._broken or not self.sub.wants(event, self.channel.uuid):
            return
        if self._hold is not None:
            self._hold.append(event)
            return
        self._send_event(event)

    def _send_event(self, event: SimEvent) -> None:
        if self._write(event.encode(), "event", event.name):
            event.delivered = True

    def _send_reply(self, data: bytes, kind: str, name: str) -> None:
        faults = self.host.faults
        summary = self._current.summary if self._current is not None else ""
        delay = faults.delay_for(summary)
        if delay > 0:
            self.clock.sleep(delay)
        if Faults.matches(faults.drop_mid_reply, summary):
            with self._lock:
                try:
                    self.sock.sendall(data[: max(1, len(data) // 2)])
                except OSError:
                    pass
            self._end("fault: dropped mid-reply", notice=False)
            return
        self._write(data, kind, name)
        if Faults.matches(faults.garbage_after, summary):
            self._write(faults.garbage, "garbage", "garbage")

    def reply(self, text: str, extra: Sequence[tuple[str, str]] = ()) -> None:
        self._send_reply(encode_reply(text, extra), "reply", text)

    def api_reply(self, body: str) -> None:
        self._send_reply(encode_api_response(body), "api", body)

    # ================================================================== commands

    def _handle(self, command: ReceivedCommand) -> None:
        self._current = command
        word, _, rest = command.line.partition(" ")
        word = word.lower()
        rest = rest.strip()
        error = self.host.faults.error_for(command.summary)
        if error is not None:
            if word == "api":
                self.api_reply(error if error.endswith("\n") else error + "\n")
            else:
                self.reply(error)
            return
        if word in ("exit", "..."):
            self.reply("+OK bye")
            self._end("exit", notice=True)
            return
        if word == "resume":
            self.resume_flag = True
            self.channel.vars.set("socket_resume", "true")
            self.reply("+OK")
            return
        simple = {
            "connect": self._connect,
            "getvar": self._getvar,
            "myevents": self._myevents,
            "divert_events": self._divert_events,
            "sendmsg": self._sendmsg,
        }
        if word in simple:
            simple[word](command, rest)
            return
        if not self.full:
            self.reply("-ERR command not found")
            return
        full_only = {
            "linger": self._linger,
            "nolinger": self._nolinger,
            "event": self._event,
            "nixevent": self._nixevent,
            "noevents": self._noevents,
            "filter": self._filter,
            "api": self._api,
            "bgapi": self._bgapi,
            "log": self._log,
            "nolog": self._nolog,
            "sendevent": self._sendevent,
        }
        handler = full_only.get(word)
        if handler is None:
            self.reply("-ERR command not found")
        else:
            handler(command, rest)

    def _connect(self, command: ReceivedCommand, rest: str) -> None:
        self.connected = True
        self.host.controller_connected()
        headers = self.channel.build("CHANNEL_DATA").headers
        data = encode_channel_data_reply(headers, "async" if self.async_mode else "static",
                                         "full" if self.full else "single-channel")
        self._send_reply(data, "reply", "+OK")
        self.channel.signal.notify()

    def _getvar(self, command: ReceivedCommand, rest: str) -> None:
        value = self.channel.vars.get(rest) if rest else None
        self.reply(value if value else "-ERR command not found")

    def _after_subscribe(self) -> None:
        ch = self.channel
        if self.park_pending and ch.parked and self.sub.covers("CHANNEL_PARK"):
            self.park_pending = False
            ch.emit("CHANNEL_PARK")

    def _myevents(self, command: ReceivedCommand, rest: str) -> None:
        self.reply(self.sub.enable_myevents())
        self._after_subscribe()

    def _divert_events(self, command: ReceivedCommand, rest: str) -> None:
        if not rest:
            self.reply("-ERR missing value.")
        elif rest.lower() == "on":
            self.reply("+OK events diverted")
        else:
            self.reply("+OK events not diverted")

    def _linger(self, command: ReceivedCommand, rest: str) -> None:
        if rest.isdigit():
            self.linger = int(rest)
            self.reply(f"+OK will linger {self.linger} seconds")
        else:
            self.linger = -1
            self.reply("+OK will linger")

    def _nolinger(self, command: ReceivedCommand, rest: str) -> None:
        self.linger = None
        self.reply("+OK will not linger")

    def _event(self, command: ReceivedCommand, rest: str) -> None:
        self.reply(self.sub.add(rest.split()))
        self._after_subscribe()

    def _nixevent(self, command: ReceivedCommand, rest: str) -> None:
        self.reply(self.sub.remove(rest.split()))

    def _noevents(self, command: ReceivedCommand, rest: str) -> None:
        self.reply(self.sub.clear())

    def _filter(self, command: ReceivedCommand, rest: str) -> None:
        self.reply(self.sub.add_filter(rest))

    def _log(self, command: ReceivedCommand, rest: str) -> None:
        self.reply(f"+OK log level {rest or 'debug'} [7]")

    def _nolog(self, command: ReceivedCommand, rest: str) -> None:
        self.reply("-ERR not loging")

    def _sendevent(self, command: ReceivedCommand, rest: str) -> None:
        self.reply(f"+OK {uuidlib.uuid4()}")

    def _api(self, command: ReceivedCommand, rest: str) -> None:
        name, _, arg = rest.partition(" ")
        self.api_reply(run_api(self.host, name, arg or None))

    def _bgapi(self, command: ReceivedCommand, rest: str) -> None:
        name, _, arg = rest.partition(" ")
        job = command.header("Job-UUID") or str(uuidlib.uuid4())
        self.reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)])
        gevent.spawn(self._background_job, job, name, arg or None)

    def _background_job(self, job: str, name: str, arg: str | None) -> None:
        body = run_api(self.host, name, arg)
        ch = self.channel
        headers = common_headers(ch.identity, "BACKGROUND_JOB", self.host.next_seq(), self.clock.epoch_us())
        headers += [("Job-UUID", job), ("Job-Owner-UUID", ch.uuid), ("Job-Command", name)]
        if arg:
            headers.append(("Job-Command-Arg", arg))
        event = SimEvent("BACKGROUND_JOB", headers, body.encode("utf-8"), at=self.clock.now())
        ch.events.append(event)
        ch.deliver(event)

    def _sendmsg(self, command: ReceivedCommand, rest: str) -> None:
        ch = self.channel
        target = rest or command.header("session-id")
        if target and target != ch.uuid:
            found = self.host.lookup(target)
            if found is None or found[1] != "b":
                self.reply(f"-ERR invalid session id [{target}]")
                return
            self._sendmsg_other(found[0], command)
            return
        call_command = command.header("call-command").lower()
        if call_command == "hangup":
            self.reply("+OK")
            ch.hangup(command.header("hangup-cause") or "NORMAL_CLEARING", by="controller")
            return
        if call_command != "execute" or not command.header("execute-app-name") or ch.hung_up:
            self.reply("+OK")              # FreeSWITCH only logs "Invalid Command!"
            return
        if self.async_mode or truthy(command.header("async")):
            self._queue(ch, command)
            self.reply("+OK")
            if Faults.matches(self.host.faults.hangup_on_execute, command.summary):
                ch.hangup("NORMAL_CLEARING", by="caller")
            return
        item = self._queued_app(command)
        self._hold = []
        try:
            execute(self.host, item.app, item.arg, app_uuid=item.event_uuid, via_sendmsg=True, loops=item.loops)
        finally:
            held, self._hold = self._hold, None
        self.reply("+OK")
        for event in held:
            self._send_event(event)

    def _sendmsg_other(self, other: Channel, command: ReceivedCommand) -> None:
        """A ``sendmsg`` for another live channel goes to that channel's queue."""
        self.reply("+OK")
        call_command = command.header("call-command").lower()
        if call_command == "hangup":
            other.hangup(command.header("hangup-cause") or "NORMAL_CLEARING", by="controller")
        elif call_command == "execute" and command.header("execute-app-name") and not other.hung_up:
            self._queue(other, command)

    @staticmethod
    def _queued_app(command: ReceivedCommand) -> QueuedApp:
        loops = command.header("loops")
        return QueuedApp(
            app=command.header("execute-app-name"),
            arg=command.header("execute-app-arg") or command.body,
            event_uuid=command.header("Event-UUID") or None,
            loops=int(loops) if loops.isdigit() else 1,
            event_lock=truthy(command.header("event-lock")),
        )

    def _queue(self, channel: Channel, command: ReceivedCommand) -> None:
        channel.app_queue.append(self._queued_app(command))
        channel.signal.notify()
