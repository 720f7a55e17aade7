"""A FreeSWITCH stand-in that answers with the *recorded bytes* of a real trace.

It dials into the server under test and, for each command the controller sends, finds the
next command of the same kind in the trace (``connect``, ``myevents``, ``linger``,
``sendmsg execute <app>``, ``api <cmd>``, ``exit``…) and sends what FreeSWITCH sent after
it in the capture, with two substitutions: ``Application-UUID`` values become the
``Event-UUID`` our controller sent for the matching execute, and the timing is compressed.
Trace commands our controller skips have their reply dropped but their events kept;
commands of ours that the trace lacks (``sched_cancel``, ``set``…) get a plain ``+OK``.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import gevent
from trace_files import messages

from esl_controller.protocol import EslParser, encode_reply

_APP_UUID = re.compile(rb"^Application-UUID: ([0-9a-f-]{36})$", re.M)


def split_commands(buf: bytearray) -> list[bytes]:
    """Complete commands at the front of ``buf`` (removed from it)."""
    out = []
    while True:
        end = buf.find(b"\n\n")
        if end < 0:
            return out
        head = bytes(buf[:end])
        length = 0
        for line in head.split(b"\n")[1:]:
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if len(buf) < end + 2 + length:
            return out
        out.append(bytes(buf[: end + 2 + length]))
        del buf[: end + 2 + length]


def command_kind(cmd: bytes) -> str:
    lines = cmd.split(b"\n\n")[0].decode().split("\n")
    first = lines[0].strip()
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    if first == "sendmsg":
        call = headers.get("call-command", "")
        app = headers.get("execute-app-name", "")
        if app in ("set", "unset", "export"):   # our pipelined settings must not match the trace's later ones
            return f"sendmsg {call} {app} {headers.get('execute-app-arg', '')}"
        return f"sendmsg {call} {app}".strip()
    word = first.split(" ")[0]
    if word in ("api", "bgapi", "getvar", "event"):
        return " ".join(first.split(" ")[:2])
    return word


def event_uuid_of(cmd: bytes) -> str | None:
    m = re.search(rb"^Event-UUID: (\S+)$", cmd, re.M)
    return m.group(1).decode() if m else None


class TraceReplayPeer:
    """Replays one trace against the server at ``address``; ``run()`` in a greenlet."""

    def __init__(self, trace: Path, address: tuple[str, int], *, stop_before: str | None = None) -> None:
        self.steps: list[tuple[bytes, list[bytes]]] = []   # (trace command, FreeSWITCH messages after it)
        for direction, data in messages(trace):
            if direction == ">>>":
                self.steps.append((data, []))
            elif self.steps:
                self.steps[-1][1].append(data)
        self.address = address
        self.received: list[bytes] = []
        self.uuid_map: dict[bytes, bytes] = {}
        self.pos = 0
        self.stop_before = stop_before
        self.sock: socket.socket | None = None
        self.closed_by_peer = False
        self._current: bytes | None = None

    def _find(self, kind: str) -> int | None:
        for i in range(self.pos, len(self.steps)):
            if command_kind(self.steps[i][0]) == kind:
                return i
        return None

    def _substitute(self, data: bytes, ours: str | None, trace_cmd: bytes) -> bytes:
        kind = command_kind(trace_cmd)
        if ours is not None and kind.startswith("sendmsg execute") and ours.encode() not in self.uuid_map.values():
            app = kind.split(" ")[2].encode()
            m = _APP_UUID.search(data)
            if m and re.search(rb"^Application: " + re.escape(app) + rb"$", data, re.M):
                self.uuid_map[m.group(1)] = ours.encode()
        if ours is not None and b"execute-app-name: play_and_get_digits" in trace_cmd:
            ours_var = self._pagd_var(self._current)
            theirs = self._pagd_var(trace_cmd)
            if ours_var and theirs:
                self.uuid_map[b"variable_" + theirs.encode()] = b"variable_" + ours_var.encode()
        changed = False
        for old, new in self.uuid_map.items():
            if old in data:
                data = data.replace(old, new)
                changed = True
        if changed and data.startswith(b"Content-Length: "):
            head, _, body = data.partition(b"\n\n")
            data = b"Content-Length: %d\n" % len(body) + head.split(b"\n", 1)[1] + b"\n\n" + body
        return data

    @staticmethod
    def _pagd_var(cmd: bytes | None) -> str | None:
        if not cmd:
            return None
        m = re.search(rb"^execute-app-arg: (.*)$", cmd, re.M)
        parts = m.group(1).decode().split(" ") if m else []
        return parts[7] if len(parts) > 7 else None

    def _events_only(self, msgs: list[bytes]) -> list[bytes]:
        return [m for m in msgs if not (m.startswith(b"Content-Type: command/reply")
                                        or m.startswith(b"Content-Type: api/response"))]

    def run(self) -> None:
        sock = socket.create_connection(self.address, timeout=10)
        self.sock = sock
        buf = bytearray()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    self.closed_by_peer = True
                    return
                buf += data
                for cmd in split_commands(buf):
                    self.received.append(cmd)
                    kind = command_kind(cmd)
                    if self.stop_before and kind == self.stop_before:
                        return
                    idx = self._find(kind)
                    if idx is None:
                        sock.sendall(encode_reply("+OK"))
                        continue
                    for skipped in range(self.pos, idx):   # keep events of commands we skip
                        for m in self._events_only(self.steps[skipped][1]):
                            sock.sendall(self._substitute(m, None, self.steps[skipped][0]))
                    self.pos = idx + 1
                    trace_cmd, answer = self.steps[idx]
                    ours = event_uuid_of(cmd)
                    self._current = cmd
                    for m in answer:
                        sock.sendall(self._substitute(m, ours, trace_cmd))
                    if kind == "exit":
                        gevent.sleep(0.01)
                        return
        except OSError:
            self.closed_by_peer = True
        finally:
            sock.close()


def parse_all(data: bytes):
    return EslParser().feed(data)
