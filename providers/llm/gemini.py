"""LLM ``gemini``: Google's Gemini API over REST with ``requests``
(``POST {base_url}/v1beta/models/{model}:generateContent``, and
``:streamGenerateContent?alt=sse`` for streaming; ``x-goog-api-key`` header), with tools
(``functionDeclarations`` → ``functionCall`` parts, answered by ``functionResponse`` parts).

REST rather than the ``google-genai`` SDK: the request is small, the SDK is an optional
extra, and the wire shape stays visible (and testable against a loopback stub).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.http import GoogleKeyHTTP
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


class GeminiSettings(LLMSettings):
    base_url: str = Field("https://generativelanguage.googleapis.com", pattern=r"^https?://")
    model: str = "gemini-2.0-flash"


def to_gemini(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    for m in (render_passages(x) for x in messages):
        if m.role == "system":
            system.append(m.content)
            continue
        if m.role == "tool":
            try:
                value = json.loads(m.content)
            except ValueError:
                value = m.content
            response = value if isinstance(value, dict) else {"result": value}
            part = {"functionResponse": {"name": names.get(m.tool_call_id or "", m.tool_call_id or ""),
                                         "response": response}}
            contents.append({"role": "user", "parts": [part]})
            continue
        parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
        parts += [{"functionCall": {"name": c.name, "args": c.arguments}} for c in m.tool_calls]
        contents.append({"role": "model" if m.role == "assistant" else "user", "parts": parts})
    return "\n\n".join(system), contents


class GeminiLLM(GoogleKeyHTTP, LLMProvider):
    name: ClassVar[str] = "gemini"
    settings_model: ClassVar[type[ProviderSettings]] = GeminiSettings
    settings: GeminiSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)


    def _body(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> dict[str, Any]:
        system, contents = to_gemini(messages)
        config: dict[str, Any] = {"maxOutputTokens": self.settings.max_tokens}
        if self.settings.temperature is not None:
            config["temperature"] = self.settings.temperature
        body: dict[str, Any] = {"contents": contents, "generationConfig": config}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]}]
        return body

    def _parts(self, payload: Any) -> tuple[list[dict[str, Any]], str | None]:
        try:
            candidate = payload["candidates"][0]
            return list(candidate.get("content", {}).get("parts", [])), candidate.get("finishReason")
        except (KeyError, IndexError, TypeError) as e:
            if isinstance(payload, dict) and payload.get("promptFeedback"):
                return [], "blocked"
            raise ProviderBadResponse(f"unexpected Gemini body: {e!r}", provider=self.label) from e

    def _call_of(self, part: dict[str, Any], n: int) -> ToolCall:
        fc = part["functionCall"]
        return ToolCall(str(fc.get("id") or f"call_{n}_{fc['name']}"), fc["name"],
                        parse_arguments(fc.get("args"), self.label))

    def _complete(self, messages: list[ChatMessage], *, tools: list[ToolSpec], timeout: float) -> LLMResponse:
        payload = self.http.json("POST", f"v1beta/models/{self.settings.model}:generateContent",
                                 json=self._body(messages, tools), timeout=timeout)
        parts, finish = self._parts(payload)
        text = "".join(p.get("text", "") for p in parts)
        calls = [self._call_of(p, i) for i, p in enumerate(parts) if "functionCall" in p]
        return LLMResponse(text, calls, self.label, finish)

    def _stream(self, messages: list[ChatMessage], *, tools: list[ToolSpec],
                timeout: float) -> Iterator[LLMChunk]:
        events = self.http.sse("POST", f"v1beta/models/{self.settings.model}:streamGenerateContent",
                               params={"alt": "sse"}, json=self._body(messages, tools), timeout=timeout)
        first = next(events, None)  # open now, so connection errors surface before the first chunk
        return self._iterate(first, events)

    def _iterate(self, first: tuple[str, Any] | None, events: Iterator[tuple[str, Any]]) -> Iterator[LLMChunk]:
        finish = None
        n = 0
        pending = [first] if first is not None else []
        for _, payload in _chain(pending, events):
            parts, reason = self._parts(payload)
            finish = reason or finish
            for part in parts:
                if part.get("text"):
                    yield LLMChunk(text=part["text"], provider=self.label)
                elif "functionCall" in part:
                    yield LLMChunk(tool_call=self._call_of(part, n), provider=self.label)
                    n += 1
        yield LLMChunk(provider=self.label, finish_reason=finish or "STOP")


def _chain(first: list[tuple[str, Any]], rest: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    yield from first
    yield from rest
