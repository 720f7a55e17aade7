"""The outbound Event Socket server: FreeSWITCH dials in, one greenlet runs each call.

Built on `gevent.server.StreamServer` (the kernel wakes us on accept; greenswitch's
``OutboundESLServer`` polls a non-blocking socket every 100 ms).  Calls run in a bounded
`gevent.pool.Pool`.  The capacity check and the pool slot are taken in the same
greenlet step, before anything yields, so the limit is exact (greenswitch counts a call only
after its ``connect`` round trip, so 117 of 200 simultaneous calls got in with a limit of 100).

A call over capacity is handed back at once (``connect``, ``resume``, ``exit``): with the
dialplan that ``ivr dialplan`` prints, the caller reaches the fallback extension instead of
waiting in silence.  ``stop(deadline)`` stops accepting, lets live calls finish until the
deadline, then hands the rest back.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import gevent
import structlog
from gevent.event import Event as GEvent
from gevent.pool import Pool
from gevent.server import StreamServer

from esl_controller.protocol import EslParser

log = structlog.get_logger(__name__)

CallHandler = Callable[[socket.socket, Any], None]


class EslServer:
    """Accepts FreeSWITCH's outbound connections and runs ``handler(sock, address)`` per call."""

    def __init__(self, host: str, port: int, handler: CallHandler, *, max_calls: int = 1000,
                 backlog: int = 1024, reject_timeout: float = 3.0,
                 on_reject: Callable[[dict[str, str], str], None] | None = None) -> None:
        self.handler = handler
        # Told of every call handed back at capacity (its connect reply's headers): its call record.
        self.on_reject = on_reject if on_reject is not None else getattr(handler, "record_refused", None)
        self.max_calls = max_calls
        self.calls = Pool(size=max_calls)
        self.reject_timeout = reject_timeout
        self.accepted = 0
        self.rejected = 0
        self._stopped = GEvent()
        self._server = StreamServer((host, port), self._on_connection, backlog=backlog)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    @property
    def live_calls(self) -> int:
        return len(self.calls)

    def start(self) -> None:
        self._server.start()
        log.info("esl.server_listening", host=self.address[0], port=self.address[1], max_calls=self.max_calls)

    def serve_forever(self) -> None:
        self.start()
        self._stopped.wait()  # woken by stop()

    def _on_connection(self, sock: socket.socket, address: Any) -> None:
        # No yield between the check and the add: the limit is exact.
        if self.calls.full():
            self.rejected += 1
            self._reject(sock)
            return
        self.calls.add(gevent.getcurrent())
        self.accepted += 1
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.handler(sock, address)
        except Exception:
            log.exception("esl.call_handler_crashed")
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _reject(self, sock: socket.socket) -> None:
        """Hand the call straight back to the dialplan: connect, resume, exit."""
        log.warning("esl.call_rejected", reason="at capacity", live=len(self.calls), max_calls=self.max_calls)
        parser = EslParser()
        channel: dict[str, str] = {}
        try:
            with gevent.Timeout(self.reject_timeout):
                sock.sendall(b"connect\n\nresume\n\nexit\n\n")
                replies = 0
                while replies < 3:
                    data = sock.recv(65536)
                    if not data:
                        break
                    for frame in parser.feed(data):
                        if frame.is_reply:
                            replies += 1
                            if replies == 1:
                                channel = frame.headers
        except (gevent.Timeout, OSError, Exception) as exc:  # a broken peer must not hurt the server
            log.info("esl.reject_incomplete", error=str(exc))
        finally:
            sock.close()
        if self.on_reject is not None and channel.get("Unique-ID"):
            try:
                self.on_reject(channel, "over_capacity")
            except Exception:
                log.exception("esl.reject_record_failed")

    def stop(self, deadline: float = 30.0, on_deadline: Callable[[], None] | None = None) -> None:
        """Stop accepting; wait up to ``deadline`` seconds for live calls, then ``on_deadline()``."""
        self._server.close()
        log.info("esl.server_draining", live=len(self.calls), deadline=deadline)
        if not self.calls.join(timeout=deadline) and on_deadline is not None:
            on_deadline()
            self.calls.join(timeout=5.0)
        self.calls.kill(timeout=5.0)
        self._stopped.set()
