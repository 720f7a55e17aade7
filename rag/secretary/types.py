"""The typed seams of the secretary engine: what one answer needs and what it decided."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from providers.llm.base import ChatMessage, LLMChunk, Passage, ToolSpec

DecisionKind = Literal["answer", "unsure", "transfer", "end_call", "error"]


class WaitableFlag(Protocol):
    """A flag a webhook tool waits for (a gevent or threading ``Event``)."""

    def wait(self, timeout: float | None = None) -> bool: ...


class StreamingLLM(Protocol):
    """What the engine needs of an LLM (an `LLMProvider`, usually the tenant's `FallbackLLM`)."""

    def stream(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] | None = None,
               timeout: float | None = None) -> Any: ...   # an iterator of `LLMChunk`


@dataclass(frozen=True, slots=True)
class WebhookTool:
    """A tool the model may call that POSTs its arguments to a tenant's HTTP API."""

    name: str
    description: str
    url: str
    parameters: dict[str, Any]          # JSON Schema properties of the arguments
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class LLMAttempt:
    """One provider tried for the answer (from the fallback chain)."""

    provider: str = ""
    ok: bool = False
    latency_ms: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For a call record; an attempt with no provider (no LLM at all) is just its error."""
        if not self.provider:
            return {"error": self.error}
        return {"provider": self.provider, "ok": self.ok, "latency_ms": self.latency_ms, "error": self.error}


@dataclass(frozen=True, slots=True)
class ToolCallMade:
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class AnswerPlan:
    """Everything one answer needs (built by `Secretary.plan` or a channel)."""

    llm: StreamingLLM | None
    system: str
    history: list[ChatMessage]
    question: str
    passages: list[Passage]
    grounded: bool                      # some passage reached the threshold
    transfer_targets: dict[str, str]
    allow_end_call: bool
    webhooks: list[WebhookTool]
    llm_timeout: float
    # Set when the question is surely complete. A voice answer prepared at the caller's pause
    # runs no webhook before it: a tool with side effects must not fire for a question the
    # caller had not finished asking. None: no wait (a chat message is complete).
    commit: WaitableFlag | None = None


@dataclass(slots=True)
class Decision:
    """What the answer decided. ``end_call`` is the "end" decision: the person is done."""

    kind: DecisionKind
    text: str = ""
    target: str | None = None            # the transfer target's name
    provider: str = ""
    started_at: float | None = None      # when the first LLM request went out (monotonic)
    first_token_at: float | None = None
    fallback: str | None = None          # "extractive" when every LLM failed
    reason: str = ""
    attempts: list[LLMAttempt] = field(default_factory=list)
    tool_calls: list[ToolCallMade] = field(default_factory=list)


def chunk_attempts(chunk: LLMChunk | BaseException) -> list[LLMAttempt]:
    """The fallback chain's attempts carried by a chunk or a `ProviderError`."""
    return [LLMAttempt(a.provider, a.ok, a.latency_ms, a.error) for a in getattr(chunk, "attempts", ()) or ()]
