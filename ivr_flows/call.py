"""The call as the flow runner sees it: a small protocol plus typed results.

`ivr_flows` never imports `esl_controller`; it drives a call through the
`Call` protocol defined here.  `esl_controller.session.CallSession` implements
it over the Event Socket, and tests may implement it however they like.

A caller hanging up is an *outcome*, not an error: every method of `Call`
raises `CallEnded` (or a subclass) once the caller is gone, and the runner
unwinds the flow and records the outcome.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class CallEnded(Exception):
    """The call is over (caller hung up, socket closed): unwind the flow."""


class PlaybackStop(str, enum.Enum):
    """Why a playback (or speak) ended."""

    COMPLETED = "completed"          # played to the end
    TERMINATOR = "terminator"        # a DTMF terminator cut it
    BROKEN = "broken"                # break_media (uuid_break) cut it
    NOT_FOUND = "not_found"          # FILE NOT FOUND
    ERROR = "error"                  # PLAYBACK ERROR (transfer, media error)


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    stop: PlaybackStop
    terminator: str | None = None    # the DTMF digit that cut it, if any
    played_ms: int | None = None


class DigitsStatus(str, enum.Enum):
    SUCCESS = "success"
    TIMEOUT = "timeout"              # no input at all
    INVALID = "invalid"              # input that failed the regex / length


@dataclass(frozen=True, slots=True)
class DigitsResult:
    status: DigitsStatus
    digits: str = ""                 # the accepted digits (SUCCESS only)
    invalid: str = ""                # what the caller typed when INVALID
    terminator: str | None = None


class RecordStop(str, enum.Enum):
    SILENCE = "silence"              # silence_hits exhausted
    MAX_LENGTH = "max_length"        # max seconds reached
    TERMINATOR = "terminator"        # the caller pressed a terminator
    BROKEN = "broken"                # break_media
    HANGUP = "hangup"                # caller hung up while recording


@dataclass(frozen=True, slots=True)
class RecordResult:
    path: str
    duration_ms: int
    stop: RecordStop
    terminator: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class BridgeResult:
    """How a bridge ended: `answered` and the hangup cause of the far end."""

    answered: bool
    disposition: str = ""            # originate_disposition (SUCCESS, USER_BUSY, …)
    hangup_cause: str = ""           # bridge_hangup_cause / last_bridge_hangup_cause


@dataclass(slots=True)
class CallInfo:
    """Who is calling whom, read once from the channel data at connect."""

    uuid: str
    caller_number: str = ""
    caller_name: str = ""
    destination_number: str = ""
    domain_uuid: str = ""
    domain_name: str = ""
    context: str = ""                # the dialplan context the call is in (Caller-Context)
    variables: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Call(Protocol):
    """What a flow node may do to a live call. Every wait has a timeout."""

    @property
    def info(self) -> CallInfo: ...

    def answer(self) -> None: ...

    def playback(self, path: str, *, terminators: str = "", timeout: float | None = None) -> PlaybackResult: ...

    def speak(self, text: str, *, engine: str = "flite", voice: str = "kal",
              terminators: str = "", timeout: float | None = None) -> PlaybackResult: ...

    def play_and_get_digits(self, prompt: str, *, min_digits: int = 1, max_digits: int = 1,
                            tries: int = 1, timeout_ms: int = 5000, terminators: str = "#",
                            invalid_prompt: str = "silence_stream://250", regex: str = "",
                            digit_timeout_ms: int = 3000,
                            timeout: float | None = None) -> DigitsResult: ...

    def record(self, path: str, *, max_seconds: int = 60, silence_threshold: int = 200,
               silence_seconds: int = 3, terminators: str = "#",
               timeout: float | None = None, live: bool = False) -> RecordResult: ...

    def transfer(self, extension: str, *, dialplan: str = "XML", context: str | None = None) -> None:
        """``context`` None: the context the call is in."""

    def bridge(self, target: str, *, timeout: float | None = None,
               hangup_after_bridge: bool = True) -> BridgeResult: ...

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None: ...

    def get_variable(self, name: str) -> str | None: ...

    def set_variable(self, name: str, value: str) -> None: ...

    def read_dtmf(self, timeout: float) -> str | None: ...

    def flush_dtmf(self) -> str: ...

    def break_media(self) -> None: ...


VariableMap = Mapping[str, str]
