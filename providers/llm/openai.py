"""LLM ``openai``, ``openai_compatible`` and ``azure_openai``: the Chat Completions API
through the ``openai`` SDK, with tools and streaming.

- ``openai``: ``POST {base_url}/chat/completions`` with ``Authorization: Bearer``.
- ``openai_compatible``: the same API on any server that speaks it (Ollama, LM Studio,
  vLLM, Groq …): ``base_url`` and ``model`` are required, the API key is optional.
- ``azure_openai``: ``POST {endpoint}/openai/deployments/{deployment}/chat/completions
  ?api-version=…`` with an ``api-key`` header.

Streamed tool calls arrive as fragments keyed by ``index``; they are assembled and emitted
as complete ``ToolCall`` chunks when the stream finishes.
"""

from __future__ import annotations

import json
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
from providers.openai_sdk import OpenAIConnection, azure_openai_client, openai_client
from providers.sdk_errors import sdk_errors


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in (render_passages(x) for x in messages):
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def to_openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


class OpenAILLMSettings(LLMSettings, OpenAIConnection):
    model: str = "gpt-4o-mini"


class OpenAICompatibleSettings(LLMSettings):
    base_url: str = Field(pattern=r"^https?://")      # e.g. http://127.0.0.1:11434/v1 (Ollama)
    model: str = Field(min_length=1)
    organization: str | None = None


class AzureOpenAISettings(LLMSettings):
    endpoint: str = Field(pattern=r"^https?://")      # https://<resource>.openai.azure.com
    deployment: str = Field(min_length=1)
    api_version: str = "2024-10-21"


class OpenAILLM(LLMProvider):
    name: ClassVar[str] = "openai"
    settings_model: ClassVar[type[ProviderSettings]] = OpenAILLMSettings
    settings: Any   # OpenAILLMSettings, OpenAICompatibleSettings or AzureOpenAISettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        self._client: Any = None

    def _make_client(self) -> Any:
        return openai_client(self.settings, self.secret("api_key"))

    def _model_name(self) -> str:
        return self.settings.model

    def client(self) -> Any:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def warm_up(self) -> None:
        self.client()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(self, messages: list[ChatMessage], tools: list[ToolSpec], timeout: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self._model_name(), "messages": to_openai_messages(messages),
                                  "max_tokens": self.settings.max_tokens, "timeout": timeout}
        if self.settings.temperature is not None:
            kwargs["temperature"] = self.settings.temperature
        if tools:
            kwargs["tools"] = to_openai_tools(tools)
        return kwargs

    def _complete(self, messages: list[ChatMessage], *, tools: list[ToolSpec], timeout: float) -> LLMResponse:
        with sdk_errors(self.label):
            result = self.client().chat.completions.create(**self._request(messages, tools, timeout))
        try:
            choice = result.choices[0]
            message = choice.message
            calls = [ToolCall(c.id, c.function.name, parse_arguments(c.function.arguments, self.label))
                     for c in (message.tool_calls or [])]
            return LLMResponse(message.content or "", calls, self.label, choice.finish_reason)
        except (AttributeError, IndexError, TypeError) as e:
            raise ProviderBadResponse(f"unexpected completion body: {e}", provider=self.label) from e

    def _stream(self, messages: list[ChatMessage], *, tools: list[ToolSpec],
                timeout: float) -> Iterator[LLMChunk]:
        with sdk_errors(self.label):
            stream = self.client().chat.completions.create(**self._request(messages, tools, timeout), stream=True)
        return self._iterate(stream)

    def _iterate(self, stream: Any) -> Iterator[LLMChunk]:
        pending: dict[int, dict[str, str]] = {}
        finish = None
        with sdk_errors(self.label), stream:
            for event in stream:
                if not getattr(event, "choices", None):
                    continue
                choice = event.choices[0]
                delta = choice.delta
                finish = choice.finish_reason or finish
                if delta is not None and delta.content:
                    yield LLMChunk(text=delta.content, provider=self.label)
                for frag in (getattr(delta, "tool_calls", None) or []):
                    slot = pending.setdefault(frag.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = frag.id or slot["id"]
                    if frag.function is not None:
                        slot["name"] = frag.function.name or slot["name"]
                        slot["arguments"] += frag.function.arguments or ""
        for _, slot in sorted(pending.items()):
            call = ToolCall(slot["id"], slot["name"], parse_arguments(slot["arguments"], self.label))
            yield LLMChunk(tool_call=call, provider=self.label)
        yield LLMChunk(provider=self.label, finish_reason=finish or "stop")


class OpenAICompatibleLLM(OpenAILLM):
    name: ClassVar[str] = "openai_compatible"
    settings_model: ClassVar[type[ProviderSettings]] = OpenAICompatibleSettings
    required_secrets: ClassVar[tuple[str, ...]] = ()

    def _make_client(self) -> Any:
        # Local servers (Ollama, vLLM) accept any key; the SDK insists on one.
        return openai_client(self.settings, self._secrets.get("api_key", "not-needed"))


class AzureOpenAILLM(OpenAILLM):
    name: ClassVar[str] = "azure_openai"
    settings_model: ClassVar[type[ProviderSettings]] = AzureOpenAISettings

    def _make_client(self) -> Any:
        return azure_openai_client(self.settings, self.secret("api_key"))

    def _model_name(self) -> str:
        return self.settings.deployment
