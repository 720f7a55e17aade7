"""A tiny scripted controller for the simulator tests: a gevent TCP server on 127.0.0.1 whose
connections are driven by a test function with raw bytes and our `EslParser`.

`replay_trace` sends exactly the commands of a recorded trace: before each command it waits
until the simulator has sent as many frames as FreeSWITCH had sent at that point of the
capture (CHANNEL_PARK aside: its position races on the wire), with the trace's channel
uuid replaced by the simulated one.
"""

from __future__ import annotations

import socket
import uuid as uuidlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event as GEvent
from gevent.server import StreamServer
from trace_files import messages

from esl_controller.errors import ProtocolError
from esl_controller.protocol import EslParser, Event, Frame, encode_execute
from esl_controller.simulator import CallerScript
from esl_controller.simulator.caller import Action

WAIT = 10.0


def patient(actions: Sequence[Action] = (), **options: Any) -> CallerScript:
    """A caller that never gives up on its own unless told: the limits a test is not about
    must not depend on how fast this machine happens to be."""
    options.setdefault("max_call_seconds", 3600.0)
    options.setdefault("ring_timeout", 3600.0)
    return CallerScript(actions, **options)


def frame_key(frame: Frame) -> tuple[str, str]:
    """What a frame is: its content type and reply text, api body, event name or notice kind."""
    ctype = frame.content_type
    if ctype == "text/event-plain":
        assert frame.event is not None
        return ctype, frame.event.name
    if ctype == "text/disconnect-notice":
        return ctype, frame.headers.get("Content-Disposition", "")
    return ctype, frame.reply_text


def is_park(frame: Frame) -> bool:
    return frame.event is not None and frame.event.name == "CHANNEL_PARK"


def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll the simulator's state (for conditions no frame announces)."""
    with gevent.Timeout(timeout, AssertionError("condition not reached")):
        while not predicate():
            gevent.sleep(0.002)


class Conn:
    """One accepted connection from the simulator."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: list[Frame] = []
        self.raw = bytearray()
        self.reads = 0
        self.protocol_error: ProtocolError | None = None
        self.closed = GEvent()
        self.finished = GEvent()
        self._parser = EslParser()
        self._changed = GEvent()
        self._reader = gevent.spawn(self._read)

    def _read(self) -> None:
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.reads += 1
                self.raw += data
                for frame in self._parser.feed(data):
                    self.frames.append(frame)
                self._changed.set()
        except ProtocolError as exc:
            self.protocol_error = exc
        except OSError:
            pass
        finally:
            self.closed.set()
            self._changed.set()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, text: str, timeout: float = WAIT) -> Frame:
        """Send a command and return its reply (events before it are kept in ``frames``)."""
        before = sum(1 for f in self.frames if f.is_reply)
        self.send(text.encode() + b"\n\n")
        self.wait_for(lambda: sum(1 for f in self.frames if f.is_reply) > before, timeout)
        return [f for f in self.frames if f.is_reply][before]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        failure = AssertionError(f"timed out; frames so far: {[frame_key(f) for f in self.frames]}")
        with gevent.Timeout(timeout, failure):
            while not predicate():
                self._changed.clear()
                if predicate():
                    break
                if self.closed.is_set():
                    raise AssertionError(f"connection closed; frames: {[frame_key(f) for f in self.frames]}")
                self._changed.wait()

    def events(self, name: str | None = None) -> list[Event]:
        return [f.event for f in self.frames if f.event is not None and (name is None or f.event.name == name)]

    def start(self, *, linger: int | None = 5) -> Frame:
        """``connect``, ``myevents`` and (``linger N``); returns the channel data reply."""
        data = self.command("connect")
        assert self.command("myevents").reply_text == "+OK Events Enabled"
        if linger is not None:
            self.command(f"linger {linger}")
        return data

    def execute(self, app: str, arg: str | None = None, *, wait: bool = True, timeout: float = WAIT) -> Event | None:
        """``sendmsg`` execute tagged with a fresh Event-UUID; waits for *its* completion."""
        event_uuid = str(uuidlib.uuid4())
        before = sum(1 for f in self.frames if f.is_reply)
        self.send(encode_execute(app, arg, event_uuid=event_uuid))
        self.wait_for(lambda: sum(1 for f in self.frames if f.is_reply) > before, timeout)
        if not wait:
            return None
        self.wait_for(lambda: self.completion(event_uuid) is not None, timeout)
        return self.completion(event_uuid)

    def completion(self, event_uuid: str) -> Event | None:
        for event in self.events("CHANNEL_EXECUTE_COMPLETE"):
            if event.get("Application-UUID") == event_uuid:
                return event
        return None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ScriptedController:
    """Accepts the simulator's connections and runs ``script(conn)`` for each."""

    def __init__(self, script: Callable[[Conn], None] | None = None) -> None:
        self.script = script
        self.conns: list[Conn] = []
        self.errors: list[BaseException] = []
        self.accepted = GEvent()
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.address[1]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _handle(self, sock: socket.socket, address: object) -> None:
        conn = Conn(sock)
        self.conns.append(conn)
        self.accepted.set()
        if self.script is None:
            conn.closed.wait(timeout=60)
            return
        try:
            self.script(conn)
        except BaseException as exc:   # reported by the test through `check`
            self.errors.append(exc)
        finally:
            conn.close()
            conn.finished.set()

    def check(self, timeout: float = WAIT) -> None:
        """Wait for every connection's script to finish and re-raise its first error."""
        for conn in list(self.conns):
            if self.script is not None and not conn.finished.wait(timeout=timeout):
                raise AssertionError("controller script did not finish")
        if self.errors:
            raise self.errors[0]

    def stop(self) -> None:
        self.server.stop(timeout=1)


def trace_frames(path: Path) -> list[Frame]:
    frames = []
    for direction, data in messages(path):
        if direction == "<<<":
            frames.extend(EslParser().feed(data))
    return frames


def trace_uuid(path: Path) -> str:
    return trace_frames(path)[0].headers["Unique-ID"]


def replay_trace(conn: Conn, path: Path, *, stop_after: int | None = None) -> None:
    """Send the trace's commands, pacing them on the frames received so far."""
    old_uuid = trace_uuid(path)
    expected = 0
    sent = 0
    new_uuid = ""
    for direction, data in messages(path):
        if direction == "<<<":
            expected += sum(1 for frame in EslParser().feed(data) if not is_park(frame))
            continue
        conn.wait_for(lambda count=expected: sum(1 for f in conn.frames if not is_park(f)) >= count)
        if not new_uuid and conn.frames:
            new_uuid = conn.frames[0].headers.get("Unique-ID", "")
        if new_uuid:
            data = data.replace(old_uuid.encode(), new_uuid.encode())
        conn.send(data)
        sent += 1
        if stop_after is not None and sent >= stop_after:
            break
    conn.wait_for(lambda: sum(1 for f in conn.frames if not is_park(f)) >= expected or conn.closed.is_set())
