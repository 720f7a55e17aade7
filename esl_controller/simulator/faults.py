"""Fault knobs: how the simulated FreeSWITCH misbehaves on purpose.

Commands are matched by the prefix of their summary as `ReceivedCommand.summary` writes it
(``"connect"``, ``"linger 30"``, ``"sendmsg execute playback /x.wav"``, ``"api uuid_break …"``);
an empty prefix matches every command.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field


def _match(table: Mapping[str, object], summary: str) -> str | None:
    best = None
    for prefix in table:
        if summary.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


@dataclass(frozen=True, slots=True)
class Faults:
    """What to break.  Every knob is off by default.

    * ``error_replies``: answer a matching command with this ``-ERR …`` text instead of acting
      on it (an ``api`` command gets it as its api/response body);
    * ``split_writes``: write every frame in chunks of this many bytes (1 = byte by byte);
      ``random_split`` uses random chunk sizes from 1 to ``split_writes`` (7 if unset);
    * ``drop_mid_reply``: on a matching command, send half of the reply then close the socket;
    * ``hangup_on_execute``: the caller hangs up right after a matching ``sendmsg execute`` was
      accepted (``+OK``), before the application starts;
    * ``garbage_after``: after the reply to a matching command, send ``garbage`` (bytes that are
      not an ESL frame);
    * ``delay_replies``: wait this many simulated seconds before replying to a matching command.
    """

    error_replies: Mapping[str, str] = field(default_factory=dict)
    split_writes: int = 0
    random_split: bool = False
    seed: int = 0
    drop_mid_reply: str | None = None
    hangup_on_execute: str | None = None
    garbage_after: str | None = None
    garbage: bytes = b"\x00\xffthis is not ESL\nno-colon-here\n\n"
    delay_replies: Mapping[str, float] = field(default_factory=dict)

    def error_for(self, summary: str) -> str | None:
        prefix = _match(self.error_replies, summary)
        return None if prefix is None else self.error_replies[prefix]

    def delay_for(self, summary: str) -> float:
        prefix = _match(self.delay_replies, summary)
        return 0.0 if prefix is None else float(self.delay_replies[prefix])

    @staticmethod
    def matches(prefix: str | None, summary: str) -> bool:
        return prefix is not None and summary.startswith(prefix)

    def chunker(self) -> ChunkPlan:
        return ChunkPlan(self.split_writes, self.random_split, self.seed)


class ChunkPlan:
    """Cuts outgoing frames into TCP writes as the faults ask."""

    __slots__ = ("_random", "size")

    def __init__(self, size: int, randomize: bool, seed: int) -> None:
        self.size = size if size > 0 else (7 if randomize else 0)
        self._random = random.Random(seed) if randomize else None

    def split(self, data: bytes) -> list[bytes]:
        if not self.size:
            return [data]
        chunks = []
        index = 0
        while index < len(data):
            step = self._random.randint(1, self.size) if self._random else self.size
            chunks.append(data[index:index + step])
            index += step
        return chunks
