"""Server (a): our `EslServer` + `CallSession` doing the benchmark's per-call work.

``session.start()`` (``connect``; ``sched_cancel``, ``myevents``, ``linger 30`` pipelined),
``answer()``, then ``playback()`` → ``play_and_get_digits()`` until the caller hangs up
(`CallGone`), then ``finish()`` (``exit``).  The first ``playback`` also queues ``set
playback_terminators=none`` without waiting, as `CallSession` does.
"""

from __future__ import annotations

import socket
from typing import Any

from server_settings import CallCounters, ServerSettings

from esl_controller.errors import CallGone
from esl_controller.server import EslServer
from esl_controller.session import CallSession, SessionSettings
from ivr_flows.call import DigitsStatus


def make_handler(settings: ServerSettings, counters: CallCounters) -> Any:
    session_settings = SessionSettings(linger_seconds=settings.linger_seconds)

    def handle(sock: socket.socket, address: Any) -> None:
        counters.accepted += 1
        counters.live += 1
        session = CallSession(sock, address, settings=session_settings)
        try:
            session.start()
            session.answer()
            while True:
                session.playback(settings.play_path)
                result = session.play_and_get_digits(settings.menu_path, min_digits=1, max_digits=1, tries=1,
                                                     timeout_ms=5000, terminators="#")
                if result.status is not DigitsStatus.SUCCESS or result.digits != "1":
                    counters.wrong_result += 1
                counters.loops += 1
        except CallGone:
            counters.ended += 1
        except Exception as exc:
            counters.note_error(exc)
        finally:
            session.finish()
            counters.live -= 1

    return handle


def serve(settings: ServerSettings, counters: CallCounters) -> tuple[str, int]:
    server = EslServer("127.0.0.1", 0, make_handler(settings, counters), max_calls=settings.max_calls,
                       backlog=settings.backlog)
    server.start()
    return server.address
