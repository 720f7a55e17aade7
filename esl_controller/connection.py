"""One Event Socket connection: a reader greenlet, a reply FIFO and a send lock.

Owned here rather than inherited from greenswitch's ``ESLProtocol`` because its ``send``
writes with ``sock.send`` (partial writes are lost) and no lock (two greenlets interleave
commands and mis-pair replies), waits on replies with no timeout, and its reader dies on a
reply nobody waits for.  This class:

* sends each command with ``sendall`` under a lock that also appends the reply slot to the
  FIFO, so slot order always equals wire order (FreeSWITCH answers in order);
* waits for every reply with a timeout; a reply that comes after its waiter gave up still
  consumes its slot, so later replies stay paired;
* dispatches events to one callback in the reader greenlet (no second greenlet, no queue);
* on EOF, reset, a malformed frame (or anything else the reader raises) or ``close()``, fails
  every pending reply with `CallGone` and calls ``on_close`` once.  A reply that no command is waiting for is logged
  and dropped; the reader keeps going.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.lock import Semaphore

from esl_controller.errors import CallGone, CommandTimeout, ProtocolError
from esl_controller.protocol import EslParser, Event, Frame

RECV_BYTES = 65536


class EslConnection:
    """A framed, full-duplex ESL connection over one connected socket."""

    def __init__(self, sock: socket.socket, *, on_event: Callable[[Event], None],
                 on_disconnect_notice: Callable[[Frame], None],
                 on_close: Callable[[str], None], log: Any) -> None:
        self._sock = sock
        self._parser = EslParser()
        self._replies: deque[AsyncResult] = deque()
        self._send_lock = Semaphore()
        self._on_event = on_event
        self._on_notice = on_disconnect_notice
        self._on_close = on_close
        self._log = log
        self._reader: gevent.Greenlet | None = None
        self.closed = False
        self.close_reason = ""
        self.bytes_in = 0

    def start(self) -> None:
        self._reader = gevent.spawn(self._read_loop)

    # ------------------------------------------------------------------ sending

    def send(self, data: bytes, *, timeout: float) -> Frame:
        """Send one command and return its reply frame (``command/reply`` or ``api/response``)."""
        slot = self.send_nowait(data)
        try:
            return slot.get(timeout=timeout)
        except gevent.Timeout:
            raise CommandTimeout(f"no reply in {timeout:.1f}s to {data[:40]!r}") from None

    def send_nowait(self, data: bytes) -> AsyncResult:
        """Send one command; the returned slot receives its reply (or `CallGone`)."""
        return self.send_many([data])[0]

    def send_many(self, commands: list[bytes]) -> list[AsyncResult]:
        """Send several commands in one write; one reply slot each, in order."""
        if self.closed:
            raise CallGone("disconnected", self.close_reason)
        slots = [AsyncResult() for _ in commands]
        with self._send_lock:
            self._replies.extend(slots)
            try:
                self._sock.sendall(b"".join(commands) if len(commands) > 1 else commands[0])
            except OSError as exc:
                self._shutdown(f"send failed: {exc}")
                raise CallGone("disconnected", str(exc)) from exc
        return slots

    # ------------------------------------------------------------------ reading

    def _read_loop(self) -> None:
        sock, parser = self._sock, self._parser
        reason = "peer closed"
        try:
            while True:
                data = sock.recv(RECV_BYTES)
                if not data:
                    if parser.mid_frame:
                        reason = "peer closed mid-frame"
                    break
                self.bytes_in += len(data)
                for frame in parser.feed(data):
                    self._dispatch(frame)
                if self.closed:
                    return
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            self._log.warning("esl.protocol_error", error=str(exc))
        except OSError as exc:
            reason = f"socket error: {exc}"
        except gevent.GreenletExit:
            reason = self.close_reason or "closed"
        except Exception as exc:
            # A bug of ours on bytes we did not foresee: the call must still end cleanly (every
            # waiter wakes with CallGone) instead of sitting deaf with a dead reader.
            reason = f"protocol error: {type(exc).__name__}"
            self._log.exception("esl.reader_failed")
        self._shutdown(reason)

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype in ("command/reply", "api/response"):
            if self._replies:
                self._replies.popleft().set(frame)
            else:
                self._log.warning("esl.unexpected_reply", reply=frame.reply_text[:80])
        elif ctype == "text/event-plain":
            event = frame.event
            assert event is not None
            try:
                self._on_event(event)
            except ProtocolError:
                raise
            except Exception:
                self._log.exception("esl.event_handler_failed", event=event.name)
        elif ctype == "text/disconnect-notice":
            self._on_notice(frame)
        elif ctype == "text/rude-rejection":
            self._shutdown("rude rejection")
        else:
            self._log.info("esl.ignored_frame", content_type=ctype)

    # ------------------------------------------------------------------ closing

    def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        gone = CallGone("disconnected", reason)
        while self._replies:
            slot = self._replies.popleft()
            if not slot.ready():
                slot.set_exception(gone)
        try:
            self._sock.close()
        except OSError:
            pass
        try:
            self._on_close(reason)
        except Exception:
            self._log.exception("esl.close_handler_failed")

    def close(self, reason: str = "closed by controller") -> None:
        """Close the socket and wake every waiter; safe to call more than once."""
        self._shutdown(reason)
        reader = self._reader
        if reader is not None and reader is not gevent.getcurrent() and not reader.dead:
            reader.kill(block=True, timeout=1)

    def join(self, timeout: float) -> bool:
        """Wait for the reader to end (the peer closed); True if it did."""
        if self._reader is None:
            return True
        self._reader.join(timeout=timeout)
        return self._reader.dead
