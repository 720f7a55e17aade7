"""The LLM capability: chat messages in, text and tool calls out, whole or streamed.

- ``complete(messages, tools=, timeout=) -> LLMResponse(text, tool_calls, provider)``
- ``stream(messages, tools=) -> Iterator[LLMChunk]``: text deltas as they come; a tool call
  is emitted once, complete (arguments parsed), when the vendor has finished sending it.

Vendors implement ``_stream`` (the one abstract method); ``_complete`` defaults to
gathering the stream, and vendors whose API has a cheaper non-streaming call override it.

Retrieved passages travel with the message that needs them (``ChatMessage.passages``):
cloud models see them rendered into the text (``render_passages``), the ``extractive``
answerer reads them directly.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import structlog

from providers.base import Provider, ProviderSettings
from providers.errors import ProviderBadResponse

log = structlog.get_logger(__name__)

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved piece of a tenant's documents."""

    text: str
    source: str = ""
    score: float | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None          # for role="tool": which call this answers
    passages: tuple[Passage, ...] = ()


@dataclass(frozen=True, slots=True)
class LLMResponse:
    text: str
    tool_calls: list[ToolCall]
    provider: str
    finish_reason: str | None = None
    attempts: tuple[Any, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class LLMChunk:
    """A piece of a streamed answer: a text delta, or one complete tool call."""

    text: str = ""
    tool_call: ToolCall | None = None
    provider: str = ""
    finish_reason: str | None = None
    attempts: tuple[Any, ...] = field(default=(), compare=False)


MessageLike = ChatMessage | Mapping[str, Any]


def coerce_messages(messages: Sequence[MessageLike]) -> list[ChatMessage]:
    """Accept ``ChatMessage`` objects or OpenAI-style dicts."""
    out = []
    for m in messages:
        if isinstance(m, ChatMessage):
            out.append(m)
            continue
        calls = tuple(c if isinstance(c, ToolCall) else ToolCall(c["id"], c["name"], dict(c["arguments"]))
                      for c in m.get("tool_calls", ()) or ())
        passages = tuple(p if isinstance(p, Passage) else Passage(**p) for p in m.get("passages", ()) or ())
        out.append(ChatMessage(role=m["role"], content=m.get("content") or "", tool_calls=calls,
                               tool_call_id=m.get("tool_call_id"), passages=passages))
    return out


def render_passages(message: ChatMessage) -> ChatMessage:
    """Fold a message's passages into its text, numbered with their sources."""
    if not message.passages:
        return message
    lines = [message.content.rstrip(), "", "Documents:"] if message.content else ["Documents:"]
    for i, p in enumerate(message.passages, 1):
        src = f" ({p.source})" if p.source else ""
        lines.append(f"[{i}]{src} {p.text.strip()}")
    return replace(message, content="\n".join(lines), passages=())


def parse_arguments(raw: str | Mapping[str, Any] | None, provider: str) -> dict[str, Any]:
    """Tool-call arguments from a JSON string (streamed vendors) or an object."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ProviderBadResponse(f"tool call arguments are not JSON: {raw[:80]!r}", provider=provider) from e
    if not isinstance(value, dict):
        raise ProviderBadResponse("tool call arguments are not an object", provider=provider)
    return value


class LLMSettings(ProviderSettings):
    model: str = ""
    temperature: float | None = None
    max_tokens: int = 512
    timeout: float = 20.0


class LLMProvider(Provider):
    kind: ClassVar[str] = "llm"
    settings_model: ClassVar[type[ProviderSettings]] = LLMSettings
    settings: LLMSettings

    def complete(self, messages: Sequence[MessageLike], *, tools: Sequence[ToolSpec] | None = None,
                 timeout: float | None = None) -> LLMResponse:
        msgs = coerce_messages(messages)
        started = time.monotonic()
        result = self._call("complete", lambda t: self._complete(msgs, tools=list(tools or ()), timeout=t),
                            timeout=timeout)
        log.info("llm.completed", provider=self.label, chars=len(result.text),
                 tool_calls=len(result.tool_calls), latency_ms=round((time.monotonic() - started) * 1000, 1))
        return result

    def stream(self, messages: Sequence[MessageLike], *, tools: Sequence[ToolSpec] | None = None,
               timeout: float | None = None) -> Iterator[LLMChunk]:
        """Stream the answer; ``timeout`` bounds the wait for each chunk (and the first)."""
        msgs = coerce_messages(messages)
        return self._call_stream("stream", lambda t: self._stream(msgs, tools=list(tools or ()), timeout=t),
                                 timeout=timeout)

    def _complete(self, messages: list[ChatMessage], *, tools: list[ToolSpec], timeout: float) -> LLMResponse:
        """Default: gather ``_stream``. The caller's deadline bounds the whole gathering."""
        text: list[str] = []
        calls: list[ToolCall] = []
        finish = None
        for chunk in self._stream(messages, tools=tools, timeout=timeout):
            text.append(chunk.text)
            if chunk.tool_call:
                calls.append(chunk.tool_call)
            finish = chunk.finish_reason or finish
        return LLMResponse("".join(text), calls, self.label, finish)

    @abc.abstractmethod
    def _stream(self, messages: list[ChatMessage], *, tools: list[ToolSpec],
                timeout: float) -> Iterator[LLMChunk]:
        """Open the vendor stream and yield chunks. Map vendor errors while iterating."""
