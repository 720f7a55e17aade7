"""The ``socket`` application: dial the controller, hand it the call, and what happens when
the connection ends.

``socket A:port|B:port async full`` tries the hosts in order *only while the TCP connect
fails* (refused); a host without a port inherits the previous one; only loopback hosts are
allowed (the simulator never touches the network beyond 127.0.0.1).  No host accepting: the
app returns at once and the dialplan goes on.

Async mode waits for the controller's ``connect``, then parks (`park_loop`) running what
the controller queues.  When the connection ends while the call is in there:

* with ``socket_resume`` (the channel variable, or the ``resume`` command): the channel is
  reset, the running app is cut and the dialplan continues with the next action;
* without it: the running app plays out, whatever the controller still queued runs, and the
  dialplan continues;
* if the controller never sent ``connect``: with ``socket_resume`` the dialplan continues,
  without it the call is stranded (dead air until the caller hangs up).

Sync mode runs the command loop inside the app; when it ends with ``socket_resume`` true the
channel is left in CS_RESET (the trap: dead air), otherwise the dialplan continues.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from typing import Protocol

import gevent.socket

from esl_controller.simulator.errors import SimulatorConfigError
from esl_controller.simulator.execution import park_loop, run_queued
from esl_controller.simulator.listener import Listener, ListenerHost
from esl_controller.simulator.records import ConnectAttempt

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORT = 8084


@dataclass(frozen=True, slots=True)
class SocketTarget:
    host: str
    port: int


def parse_socket_data(data: str) -> tuple[list[SocketTarget], bool, bool]:
    """``"A:8084|B:8085 async full"`` → targets, async, full."""
    tokens = data.split()
    if not tokens:
        raise SimulatorConfigError("socket needs a host")
    flags = {token.lower() for token in tokens[1:]}
    targets: list[SocketTarget] = []
    port = DEFAULT_PORT
    for item in tokens[0].split("|"):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port_text = rest.lstrip(":")
        elif item.count(":") == 1:
            host, _, port_text = item.partition(":")
        else:
            host, port_text = item, ""
        if port_text:
            if not port_text.isdigit():
                raise SimulatorConfigError(f"bad port in socket target {item!r}")
            port = int(port_text)
        targets.append(SocketTarget(host, port))
    if not targets:
        raise SimulatorConfigError(f"socket needs a host: {data!r}")
    return targets, "async" in flags, "full" in flags


def check_loopback(data: str) -> None:
    for target in parse_socket_data(data)[0]:
        if target.host not in LOOPBACK_HOSTS:
            raise SimulatorConfigError(f"socket target {target.host!r} is not a loopback address")


class SocketHost(ListenerHost, Protocol):
    connect_timeout: float

    def open_listener(self, sock: socket.socket, *, async_mode: bool, full: bool) -> Listener: ...
    def connect_attempt(self, attempt: ConnectAttempt) -> None: ...
    def note_fallback(self, reason: str) -> None: ...
    def dead_air(self, kind: str) -> None: ...
    def entering_socket(self, inside: bool) -> None: ...


def socket_app(host: SocketHost, arg: str) -> None:
    ch = host.channel
    try:
        targets, async_mode, full = parse_socket_data(arg)
        check_loopback(arg)
    except SimulatorConfigError as exc:
        host.connect_attempt(ConnectAttempt(arg, 0, f"error: {exc}"))
        host.note_fallback(f"socket: {exc}")
        return None
    sock = None
    for target in targets:
        ch.vars.set("socket_host", target.host)
        try:
            sock = gevent.socket.create_connection((target.host, target.port), timeout=host.connect_timeout)
        except ConnectionRefusedError:
            host.connect_attempt(ConnectAttempt(target.host, target.port, "refused"))
            continue
        except OSError as exc:
            host.connect_attempt(ConnectAttempt(target.host, target.port, f"error: {exc}"))
            continue
        host.connect_attempt(ConnectAttempt(target.host, target.port, "connected"))
        break
    if sock is None:
        host.note_fallback("no controller accepted the connection")
        return None
    # The connect had a deadline; reads must not: FreeSWITCH never times out a quiet controller once
    # the first command came (FREESWITCH-SAFETY.md), it only notices a closed connection.
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener = host.open_listener(sock, async_mode=async_mode, full=full)
    if async_mode:
        _run_async(host, listener)
    else:
        _run_sync(host, listener)
    return None


def _run_async(host: SocketHost, listener: Listener) -> None:
    ch = host.channel
    listener.start()
    while True:
        generation = ch.signal.generation()
        if ch.hung_up or listener.connected or listener.ended:
            break
        ch.signal.wait(math.inf, generation)
    if ch.hung_up:
        return
    if not listener.connected:
        if listener.resume:
            host.note_fallback(f"controller never sent connect ({listener.end_reason})")
        else:
            host.dead_air("stranded")
        return
    host.entering_socket(True)
    try:
        park_loop(host, socket=True)
    finally:
        host.entering_socket(False)
    if ch.hung_up or ch.transfer_pending:
        return
    if ch.reset_requested:
        ch.reset_requested = False
        ch.app_queue.clear()
        host.note_fallback(f"{listener.end_reason} (socket_resume)")
        return
    while ch.app_queue and ch.media_ok:         # switch_ivr_parse_all_events
        run_queued(host, ch.app_queue.popleft())
    if ch.hung_up or ch.transfer_pending:
        return
    host.note_fallback(listener.end_reason)


def _run_sync(host: SocketHost, listener: Listener) -> None:
    ch = host.channel
    host.entering_socket(True)
    try:
        listener.run_inline()
    finally:
        host.entering_socket(False)
    if ch.hung_up:
        return
    if listener.resume:
        host.dead_air("cs_reset")
        return
    host.note_fallback(listener.end_reason)
