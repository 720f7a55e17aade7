"""Records of what happened on a simulated call, kept in its `CallState`: what the caller
heard, what was recorded, which bridges were tried, which sockets were dialled."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Heard:
    """A prompt the caller heard (``playback``, ``speak``, a ``play_and_get_digits`` prompt)."""

    kind: str                 # "playback" | "speak"
    what: str                 # the file path / stream URL, or the spoken text
    played_ms: int            # simulated milliseconds actually played
    length_ms: int | None     # full length (None: endless stream)
    stop: str                 # "done" | "terminator" | "break" | "hangup" | "interrupted" | "not_found"


@dataclass(frozen=True, slots=True)
class Recording:
    """A file that ``record`` wrote."""

    path: str                 # the path the controller asked for
    file: str                 # where the simulator wrote it
    ms: int
    samples: int
    size: int
    stop: str                 # "silence" | "max_length" | "terminator" | "break" | "hangup" | "interrupted"


@dataclass(frozen=True, slots=True)
class BridgeAttempt:
    target: str
    answered: bool
    disposition: str
    hangup_cause: str = ""


@dataclass(frozen=True, slots=True)
class ConnectAttempt:
    host: str
    port: int
    result: str               # "connected" | "refused" | "error: …"


@dataclass(frozen=True, slots=True)
class SentFrame:
    """One frame the simulator wrote to the controller."""

    kind: str                 # "reply" | "api" | "event" | "notice" | "garbage"
    name: str                 # reply text, api body, event name or notice disposition
    raw: bytes
    at: float                 # simulated seconds since the call was placed
    writes: tuple[int, ...] = ()   # sizes of the TCP writes it went out in
