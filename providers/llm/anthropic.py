"""LLM ``anthropic``: Claude through the ``anthropic`` SDK's Messages API
(``POST {base_url}/v1/messages``, ``x-api-key`` and ``anthropic-version`` headers), with
tools (``tool_use`` / ``tool_result`` blocks) and streaming (SSE: ``content_block_delta``
with ``text_delta`` or ``input_json_delta``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.llm.base import (
    ChatMessage,
    LLMChunk,
    LLMProvider,
    LLMResponse,
    LLMSettings,
    ToolCall,
    ToolSpec,
    parse_arguments,
    render_passages,
)
from providers.sdk_errors import sdk_errors


class AnthropicSettings(LLMSettings):
    base_url: str = Field("https://api.anthropic.com", pattern=r"^https?://")
    model: str = "claude-haiku-4-5"


def to_anthropic(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) in Anthropic's shape; tool results go in user turns."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in (render_passages(x) for x in messages):
        if m.role == "system":
            system.append(m.content)
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
            out.append({"role": "assistant", "content": blocks})
            continue
        out.append({"role": m.role, "content": m.content})
    return "\n\n".join(system), out


class AnthropicLLM(LLMProvider):
    name: ClassVar[str] = "anthropic"
    settings_model: ClassVar[type[ProviderSettings]] = AnthropicSettings
    settings: AnthropicSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import anthropic

            self._client = anthropic.Anthropic(api_key=self.secret("api_key"), base_url=self.settings.base_url,
                                               max_retries=0, timeout=self.settings.timeout)
        return self._client

    def warm_up(self) -> None:
        self.client()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(self, messages: list[ChatMessage], tools: list[ToolSpec], timeout: float) -> dict[str, Any]:
        system, msgs = to_anthropic(messages)
        kwargs: dict[str, Any] = {"model": self.settings.model, "max_tokens": self.settings.max_tokens,
                                  "messages": msgs, "timeout": timeout}
        if system:
            kwargs["system"] = system
        if self.settings.temperature is not None:
            kwargs["temperature"] = self.settings.temperature
        if tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                               for t in tools]
        return kwargs

    def _complete(self, messages: list[ChatMessage], *, tools: list[ToolSpec], timeout: float) -> LLMResponse:
        with sdk_errors(self.label):
            result = self.client().messages.create(**self._request(messages, tools, timeout))
        try:
            text = "".join(b.text for b in result.content if b.type == "text")
            calls = [ToolCall(b.id, b.name, parse_arguments(b.input, self.label))
                     for b in result.content if b.type == "tool_use"]
            return LLMResponse(text, calls, self.label, result.stop_reason)
        except (AttributeError, TypeError) as e:
            raise ProviderBadResponse(f"unexpected message body: {e}", provider=self.label) from e

    def _stream(self, messages: list[ChatMessage], *, tools: list[ToolSpec],
                timeout: float) -> Iterator[LLMChunk]:
        with sdk_errors(self.label):
            stream = self.client().messages.create(**self._request(messages, tools, timeout), stream=True)
        return self._iterate(stream)

    def _iterate(self, stream: Any) -> Iterator[LLMChunk]:
        blocks: dict[int, dict[str, str]] = {}
        finish = None
        with sdk_errors(self.label), stream:
            for event in stream:
                kind = getattr(event, "type", "")
                if kind == "content_block_start" and event.content_block.type == "tool_use":
                    blocks[event.index] = {"id": event.content_block.id, "name": event.content_block.name,
                                           "json": ""}
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        yield LLMChunk(text=delta.text, provider=self.label)
                    elif delta.type == "input_json_delta" and event.index in blocks:
                        blocks[event.index]["json"] += delta.partial_json
                elif kind == "content_block_stop" and event.index in blocks:
                    b = blocks.pop(event.index)
                    yield LLMChunk(tool_call=ToolCall(b["id"], b["name"], parse_arguments(b["json"], self.label)),
                                   provider=self.label)
                elif kind == "message_delta":
                    finish = getattr(event.delta, "stop_reason", None) or finish
                elif kind == "error":
                    raise ProviderBadResponse(f"stream error event: {getattr(event, 'error', '')}",
                                              provider=self.label)
        yield LLMChunk(provider=self.label, finish_reason=finish or "end_turn")
