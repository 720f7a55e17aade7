"""What every benchmark server is told (`ServerSettings`) and what it counts (`CallCounters`).

The three servers (ours, greenswitch, lean) and the full controller run the same per-call
work on the same prompt paths; their counters come back to the runner as one JSON line when
the server process stops (see `server_process`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ServerSettings:
    play_path: str = "/var/lib/ivr/prompts/bench_prompt.wav"
    menu_path: str = "/var/lib/ivr/prompts/bench_menu.wav"
    max_calls: int = 20000
    backlog: int = 2048
    linger_seconds: int = 30


@dataclass(slots=True)
class CallCounters:
    accepted: int = 0
    live: int = 0
    loops: int = 0            # play → menu rounds completed
    ended: int = 0            # calls that ended by the caller hanging up, as expected
    wrong_result: int = 0     # a menu that did not return the digit the caller pressed
    errors: dict[str, int] = field(default_factory=dict)

    def note_error(self, exc: BaseException) -> None:
        key = f"{type(exc).__name__}: {exc}"[:100]
        self.errors[key] = self.errors.get(key, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
