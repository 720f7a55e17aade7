"""What a node sees while it runs: `FlowContext`, and the optional speech service protocols.

The controller builds one `FlowContext` per call and hands it to `FlowRunner`. Everything a node
may touch is here and injectable (the call, the clock, the sleep used between webhook retries,
the HTTP session, the speech services), so nodes run the same against FreeSWITCH, the simulator
or a test fake.

Protocols (implementations must not block the gevent hub: do CPU work in a pool, with a timeout):
- `Synthesizer.synthesize(text, language, voice) -> str`: a WAV path FreeSWITCH can play.
  Absent or failing, `say` falls back to `call.speak(text)` (FreeSWITCH's flite).
- `Recognizer.transcribe(wav_path, hints) -> str`: the words in a recording; `hints` are the
  menu's option words (a grammar for engines that take one).

`extensions` is where later node types (e.g. `ask_ai`) find their services (LLM, RAG, …) by a
name they choose; the loader takes extra node types through its `node_types` argument.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import requests
import structlog

from ivr_flows.call import Call, CallInfo, PlaybackResult, PlaybackStop
from ivr_flows.templating import Template, TemplateVars

if TYPE_CHECKING:
    from ivr_flows.flow import Flow


@runtime_checkable
class Synthesizer(Protocol):
    def synthesize(self, text: str, language: str, voice: str | None) -> str: ...


@runtime_checkable
class Recognizer(Protocol):
    def transcribe(self, wav_path: str, hints: list[str]) -> str: ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def redact_length(text: str | None) -> str:
    """What a log line may say of a transcript unless the operator opted in: its length."""
    return f"<{len(text or '')} chars>"


@dataclass(slots=True)
class Recording:
    """A recording made during the call (for the call record)."""

    node: str
    path: str
    duration_ms: int
    stop: str
    transcript: str | None = None


@dataclass(eq=False)
class FlowContext:
    """Per-call state and services for the nodes of a flow run."""

    call: Call
    vars: dict[str, Any] = field(default_factory=dict)
    log: Any = field(default_factory=lambda: structlog.get_logger("ivr_flows.run"))
    clock: Callable[[], dt.datetime] = utc_now
    prompt_dir: Path | None = None
    recordings_dir: Path | None = None
    synthesizer: Synthesizer | None = None
    recognizer: Recognizer | None = None
    flow_loader: Callable[[str], Flow] | None = None
    allowed_url_hosts: frozenset[str] = frozenset()
    secrets: Mapping[str, str] = field(default_factory=dict)
    http_session: requests.Session | None = None
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    tts_voice: str | None = None
    transfer_context: str | None = None     # the tenant's dialplan context for transfers (None: the call's)
    redact: Callable[[str], str] = redact_length   # transcripts in log lines (the controller's opt-in policy)
    extensions: dict[str, Any] = field(default_factory=dict)
    info: CallInfo | None = None
    # Set by the runner while it runs:
    flow: Flow | None = None
    node_id: str = ""
    recordings: list[Recording] = field(default_factory=list)
    step_detail: dict[str, Any] = field(default_factory=dict)
    pending_flow: Flow | None = None
    answered: bool = False
    # Keys that cut a say/play prompt (barge-in): FreeSWITCH consumed them, so they are not in the
    # call's DTMF queue; the next menu or collect with `type_ahead: keep` uses them.
    typeahead: str = ""

    def __post_init__(self) -> None:
        if self.info is None:
            self.info = self.call.info
        if self.prompt_dir is not None:
            self.prompt_dir = Path(self.prompt_dir)
        if self.recordings_dir is not None:
            self.recordings_dir = Path(self.recordings_dir)

    # -- templates ---------------------------------------------------------------------------
    def local_now(self) -> dt.datetime:
        """The injectable clock's time in the flow's time zone (UTC when the flow has none)."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the flow clock must return an aware datetime")
        timezone = self.flow.timezone if self.flow is not None else None
        if timezone:
            from zoneinfo import ZoneInfo

            return now.astimezone(ZoneInfo(timezone))
        return now.astimezone(dt.UTC)

    def template_context(self) -> dict[str, Any]:
        info = self.info or CallInfo(uuid="")
        return {
            "vars": TemplateVars(self.vars),
            "caller": {"number": info.caller_number, "name": info.caller_name},
            "call": {
                "uuid": info.uuid,
                "destination": info.destination_number,
                "domain_name": info.domain_name,
                "domain_uuid": info.domain_uuid,
            },
            "now": self.local_now(),
        }

    def render(self, template: Template) -> str:
        return template.render(self.template_context())

    # -- for nodes -----------------------------------------------------------------------------
    @property
    def language(self) -> str:
        return self.flow.language if self.flow is not None else "en-US"

    def default_transfer_context(self) -> str:
        """Where a transfer goes when its node names no context: the tenant's, else the call's own."""
        info = self.info
        return self.transfer_context or (info.context if info is not None else "") or "default"

    def ensure_answered(self) -> None:
        """Answer the call once, before the first node that plays media or listens to the caller.

        Transfers and bridges do not answer (the far end does); `answered=True` at construction
        tells the flow that the controller already answered.
        """
        if not self.answered:
            self.call.answer()
            self.answered = True

    def note(self, **detail: Any) -> None:
        """Add facts to the current step of the RunResult (no secrets, no digits; what the caller said
        only under ``heard``, which the call record keeps and logs never show)."""
        self.step_detail.update(detail)

    def keep_key(self, result: PlaybackResult) -> None:
        """Keep the key that cut a prompt (barge-in) for the next node that reads digits."""
        if result.stop is PlaybackStop.TERMINATOR and result.terminator:
            self.typeahead += result.terminator

    def take_typeahead(self) -> str:
        """Keys pressed before a menu/collect: the ones that cut earlier prompts, then the queued ones."""
        kept, self.typeahead = self.typeahead, ""
        return kept + self.call.flush_dtmf()

    def enter_flow(self, flow: Flow) -> None:
        """Ask the runner to continue in `flow` (used by `goto_flow`)."""
        self.pending_flow = flow
