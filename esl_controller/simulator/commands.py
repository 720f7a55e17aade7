"""What the controller sends, as FreeSWITCH reads it: command parsing (sans I/O) and the
transcript record of each command.

A command is a first line, ``name: value`` header lines and an empty line, followed by
``Content-Length`` bytes of body when that header is present (``sendmsg`` with a
``text/plain`` argument).  Carriage returns are tolerated and stray newlines between commands
skipped, like ``mod_event_socket``'s ``read_packet``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from esl_controller.simulator.errors import SimulatorError

MAX_COMMAND_BYTES = 1024 * 1024
_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """One command the simulator received, for the transcript."""

    raw: bytes
    line: str
    headers: dict[str, str]
    body: str
    at: float                           # simulated seconds since the call was placed

    def header(self, name: str, default: str = "") -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    @property
    def word(self) -> str:
        return self.line.split(" ", 1)[0].lower()

    @property
    def summary(self) -> str:
        """``"sendmsg execute playback /x.wav"``, ``"sendmsg hangup USER_BUSY"``, ``"api uuid_break …"``."""
        if self.word != "sendmsg":
            return self.line
        parts = [self.line]
        command = self.header("call-command")
        if command:
            parts.append(command)
        if command == "execute":
            parts.append(self.header("execute-app-name"))
            parts.append(self.header("execute-app-arg") or self.body)
        elif command == "hangup":
            parts.append(self.header("hangup-cause"))
        return " ".join(p for p in parts if p).strip()


class CommandParser:
    """Incremental parser: ``feed(bytes) -> [(raw, line, headers, body)]``."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, str, dict[str, str], str]]:
        self._buf += data
        out = []
        while True:
            while self._buf[:1] in (b"\n", b"\r"):
                del self._buf[:1]
            match = _END.search(self._buf)
            if match is None:
                if len(self._buf) > MAX_COMMAND_BYTES:
                    raise SimulatorError("command header block too long")
                return out
            block = bytes(self._buf[: match.start()]).decode("utf-8", errors="replace")
            lines = [line.rstrip("\r") for line in block.split("\n")]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                key, sep, value = line.partition(":")
                if sep and key:
                    headers[key.strip()] = value.lstrip(" ")
            length = 0
            for key, value in headers.items():
                if key.lower() == "content-length" and value.strip().isdigit():
                    length = int(value.strip())
            total = match.end() + length
            if length > MAX_COMMAND_BYTES:
                raise SimulatorError("command body too long")
            if len(self._buf) < total:
                return out
            raw = bytes(self._buf[:total])
            body = raw[match.end():].decode("utf-8", errors="replace")
            del self._buf[:total]
            out.append((raw, lines[0].strip(), headers, body))
