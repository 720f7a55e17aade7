"""Baseline (b): a raw greenswitch ``OutboundESLServer`` application doing the same per-call work.

Same commands as the others, through greenswitch's own API: ``connect`` (done by the
server), ``sched_cancel`` (``call_command``, waits for ``+OK``), ``myevents``, ``linger 30``,
``answer`` waited through ``call_command(block=True)``, ``set playback_terminators=none``,
then ``playback()`` → ``play_and_get_digits()`` until the caller hangs up.  greenswitch pairs
completions by application *name* (``variable_current_application``) and sends no
``Event-UUID``; its accept loop polls a non-blocking socket every 100 ms, and each call runs
two extra greenlets (reader and event processor).  ``playback()`` has no timeout in
greenswitch; a hangup wakes it through the disconnect notice.
"""

from __future__ import annotations

import socket
from typing import Any

import gevent
from greenswitch.esl import OutboundESLServer, OutboundSessionHasGoneAway
from server_settings import CallCounters, ServerSettings


def make_application(settings: ServerSettings, counters: CallCounters) -> type:
    class BenchApplication:
        def __init__(self, session: Any) -> None:
            self.session = session

        def run(self) -> None:
            s = self.session
            counters.accepted += 1
            counters.live += 1
            try:
                s.call_command("sched_cancel")
                s.myevents()
                s.linger(settings.linger_seconds)
                s.call_command("answer", block=True, response_timeout=10)
                s.call_command("set", "playback_terminators=none")
                while True:
                    s.playback(settings.play_path)
                    digits = s.play_and_get_digits(1, 1, 1, 5000, "#", settings.menu_path, "silence_stream://250",
                                                   "menu_digits", "\\d+", 3000, response_timeout=30)
                    if digits != "1":
                        counters.wrong_result += 1
                    counters.loops += 1
            except OutboundSessionHasGoneAway:
                counters.ended += 1
            except Exception as exc:
                counters.note_error(exc)
            finally:
                counters.live -= 1

    return BenchApplication


def _free_port() -> int:
    """greenswitch refuses port 0 (it treats the bound port 0 as "no port"): pick one first."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return int(port)


def serve(settings: ServerSettings, counters: CallCounters) -> tuple[str, int]:
    port = _free_port()
    server = OutboundESLServer(bind_address="127.0.0.1", bind_port=port,
                               application=make_application(settings, counters),
                               max_connections=settings.max_calls)
    gevent.spawn(server.listen)
    for _ in range(500):
        if server.bound_port:
            break
        gevent.sleep(0.01)
    if server.bound_port != port:
        raise RuntimeError(f"greenswitch could not bind 127.0.0.1:{port}")
    return "127.0.0.1", port
