"""Baseline (c): the leanest correct outbound-ESL controller we could hand-write on StreamServer.

The near-physical limit for Python + gevent: one greenlet per call (the StreamServer handler)
and no other; the call's own blocking steps read the socket.  Just enough to be correct:

* every command goes out with ``sendall``; replies are paired FIFO (a command sent without
  waiting, ``set``, leaves a reply to skip, and the next reply read is that one);
* each ``execute`` carries a fresh ``Event-UUID`` and waits for the CHANNEL_EXECUTE_COMPLETE
  whose ``Application-UUID`` echoes it (never by application name);
* CHANNEL_HANGUP or a disconnect notice ends the call (`Gone`) in whatever wait it is in;
* every read has a timeout (the socket's);
* parsing is byte searches: the outer ``Content-Length``/``Content-Type``, the event's name,
  ``Application-UUID`` and, for the menu, ``read_result`` and the digits variable (URL-decoded).

Per call it sends the same commands as the ``CallSession`` app (`server_ours`): ``connect``,
``sched_cancel`` + ``myevents`` + ``linger 30`` pipelined, ``answer``, ``set
playback_terminators=none`` (not waited), then play → menu until the caller hangs up, ``exit``.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any
from urllib.parse import unquote

from gevent.server import StreamServer
from server_settings import CallCounters, ServerSettings

IO_TIMEOUT = 60.0
_EXECUTE = (b"sendmsg\ncall-command: execute\nexecute-app-name: %s\nexecute-app-arg: %s\nevent-lock: true\n"
            b"Event-UUID: %s\n\n")
_EXECUTE_NO_ARG = b"sendmsg\ncall-command: execute\nexecute-app-name: %s\nevent-lock: true\nEvent-UUID: %s\n\n"
REPLY, EVENT, NOTICE, OTHER = range(4)


class Gone(Exception):
    """The caller hung up or the socket closed."""


def _header(block: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (given as ``b"\\nName: "``) in a header block, or None."""
    at = block.find(name)
    if at < 0:
        if not block.startswith(name[1:]):
            return None
        start = len(name) - 1
    else:
        start = at + len(name)
    end = block.find(b"\n", start)
    return block[start:] if end < 0 else block[start:end]


class LeanCall:
    __slots__ = ("buf", "done", "gone", "skip", "sock", "want")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.skip = 0            # replies still due to commands sent without waiting
        self.want = b""          # the Event-UUID being waited for
        self.done: bytes | None = None
        self.gone = False

    def _frame(self) -> tuple[int, bytes, bytes]:
        buf = self.buf
        while True:
            while buf[:1] == b"\n":
                del buf[:1]
            end = buf.find(b"\n\n")
            if end >= 0:
                head = bytes(buf[:end])
                length = _header(head, b"\nContent-Length: ")
                size = int(length) if length else 0
                if len(buf) >= end + 2 + size:
                    body = bytes(buf[end + 2: end + 2 + size])
                    del buf[: end + 2 + size]
                    ctype = _header(head, b"\nContent-Type: ")
                    if ctype == b"text/event-plain":
                        return EVENT, head, body
                    if ctype in (b"command/reply", b"api/response"):
                        return REPLY, head, body
                    if ctype == b"text/disconnect-notice":
                        return NOTICE, head, body
                    return OTHER, head, body
            data = self.sock.recv(65536)
            if not data:
                raise Gone("socket closed")
            buf += data

    def _pump(self) -> bytes | None:
        """Read one frame; returns a reply's header block (for a command being waited on) or None."""
        kind, head, body = self._frame()
        if kind == REPLY:
            if self.skip:
                self.skip -= 1
                return None
            return head
        if kind == EVENT:
            name = _header(body, b"\nEvent-Name: ")
            if name == b"CHANNEL_EXECUTE_COMPLETE":
                if self.want and _header(body, b"\nApplication-UUID: ") == self.want:
                    self.done = body
            elif name == b"CHANNEL_HANGUP":
                self.gone = True
        elif kind == NOTICE:
            self.gone = True
        return None

    def command(self, data: bytes, replies: int = 1) -> list[bytes]:
        self.sock.sendall(data)
        out: list[bytes] = []
        while len(out) < replies:
            head = self._pump()
            if head is not None:
                out.append(head)
        return out

    def execute(self, app: bytes, arg: bytes = b"", *, wait: bool = True) -> bytes:
        """Run an application; with ``wait`` return its CHANNEL_EXECUTE_COMPLETE body."""
        if self.gone:
            raise Gone("hung up")
        event_uuid = str(uuid.uuid4()).encode()
        data = _EXECUTE % (app, arg, event_uuid) if arg else _EXECUTE_NO_ARG % (app, event_uuid)
        if not wait:
            self.sock.sendall(data)
            self.skip += 1
            return b""
        self.want, self.done = event_uuid, None
        reply = self.command(data)[0]
        if b"Reply-Text: -ERR" in reply:
            raise RuntimeError(f"{app!r} refused: {reply!r}")
        while self.done is None:
            if self.gone:
                raise Gone("hung up")
            self._pump()
        self.want = b""
        return self.done

    def finish(self) -> None:
        """``exit``, then read until FreeSWITCH closes (bounded by the socket timeout)."""
        try:
            self.sock.sendall(b"exit\n\n")
            while True:
                self._frame()
        except (Gone, OSError):
            pass


def make_handler(settings: ServerSettings, counters: CallCounters) -> Any:
    play = settings.play_path.encode()
    menu_arg = (f"1 1 1 5000 # {settings.menu_path} silence_stream://250 menu_digits \\d+ 3000").encode()

    def handle(sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IO_TIMEOUT)
        counters.accepted += 1
        counters.live += 1
        call = LeanCall(sock)
        try:
            connect = call.command(b"connect\n\n")[0]
            if _header(connect, b"\nSocket-Mode: ") != b"async" or _header(connect, b"\nControl: ") != b"full":
                raise RuntimeError("the socket must be 'async full'")
            # sched_cancel, myevents and linger pipelined: three replies, in order.
            for reply in call.command(_EXECUTE_NO_ARG % (b"sched_cancel", str(uuid.uuid4()).encode())
                                      + b"myevents\n\nlinger 30\n\n", replies=3):
                if b"Reply-Text: -ERR" in reply:
                    raise RuntimeError(f"start-up refused: {reply!r}")
            call.execute(b"answer")
            call.execute(b"set", b"playback_terminators=none", wait=False)
            while True:
                call.execute(b"playback", play)
                done = call.execute(b"play_and_get_digits", menu_arg)
                digits = _header(done, b"\nvariable_menu_digits: ")
                ok = _header(done, b"\nvariable_read_result: ") == b"success"
                if not ok or not digits or unquote(digits.decode()) != "1":
                    counters.wrong_result += 1
                counters.loops += 1
        except Gone:
            counters.ended += 1
        except Exception as exc:
            counters.note_error(exc)
        finally:
            call.finish()
            counters.live -= 1
            sock.close()

    return handle


def serve(settings: ServerSettings, counters: CallCounters) -> tuple[str, int]:
    server = StreamServer(("127.0.0.1", 0), make_handler(settings, counters), backlog=settings.backlog)
    server.start()
    return server.address
