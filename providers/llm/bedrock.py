"""LLM ``bedrock``: Amazon Bedrock's Converse API through boto3 (``bedrock-runtime``
``converse`` / ``converse_stream``), with tools (``toolUse`` / ``toolResult`` blocks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from providers.aws_sdk import AWSConnection, aws_client
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


class BedrockSettings(LLMSettings, AWSConnection):
    model: str = "anthropic.claude-3-haiku-20240307-v1:0"


def to_converse(messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in (render_passages(x) for x in messages):
        if m.role == "system":
            system.append({"text": m.content})
        elif m.role == "tool":
            block = {"toolResult": {"toolUseId": m.tool_call_id or "", "content": [{"text": m.content}]}}
            if out and out[-1]["role"] == "user" and any("toolResult" in b for b in out[-1]["content"]):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        else:
            content: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
            content += [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}} for c in m.tool_calls]
            out.append({"role": m.role, "content": content})
    return system, out


class BedrockLLM(LLMProvider):
    name: ClassVar[str] = "bedrock"
    settings_model: ClassVar[type[ProviderSettings]] = BedrockSettings
    settings: BedrockSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("aws_access_key_id", "aws_secret_access_key")

    def _configure(self) -> None:
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("bedrock-runtime", self.settings, self._secrets, self.label)
        return self._client

    def warm_up(self) -> None:
        self.client()

    def _request(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> dict[str, Any]:
        system, msgs = to_converse(messages)
        inference: dict[str, Any] = {"maxTokens": self.settings.max_tokens}
        if self.settings.temperature is not None:
            inference["temperature"] = self.settings.temperature
        kwargs: dict[str, Any] = {"modelId": self.settings.model, "messages": msgs, "inferenceConfig": inference}
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["toolConfig"] = {"tools": [{"toolSpec": {"name": t.name, "description": t.description or t.name,
                                                            "inputSchema": {"json": t.parameters}}} for t in tools]}
        return kwargs

    def _complete(self, messages: list[ChatMessage], *, tools: list[ToolSpec], timeout: float) -> LLMResponse:
        with sdk_errors(self.label):
            result = self.client().converse(**self._request(messages, tools))
        try:
            blocks = result["output"]["message"]["content"]
            text = "".join(b["text"] for b in blocks if "text" in b)
            calls = [ToolCall(b["toolUse"]["toolUseId"], b["toolUse"]["name"],
                              parse_arguments(b["toolUse"].get("input"), self.label)) for b in blocks if "toolUse" in b]
            return LLMResponse(text, calls, self.label, result.get("stopReason"))
        except (KeyError, TypeError) as e:
            raise ProviderBadResponse(f"unexpected Converse body: missing {e}", provider=self.label) from e

    def _stream(self, messages: list[ChatMessage], *, tools: list[ToolSpec],
                timeout: float) -> Iterator[LLMChunk]:
        with sdk_errors(self.label):
            response = self.client().converse_stream(**self._request(messages, tools))
        return self._iterate(response["stream"])

    def _iterate(self, stream: Any) -> Iterator[LLMChunk]:
        tools: dict[int, dict[str, str]] = {}
        finish = None
        with sdk_errors(self.label):
            for event in stream:
                if "contentBlockStart" in event:
                    start = event["contentBlockStart"]
                    use = start.get("start", {}).get("toolUse")
                    if use:
                        tools[start["contentBlockIndex"]] = {"id": use["toolUseId"], "name": use["name"], "json": ""}
                elif "contentBlockDelta" in event:
                    body = event["contentBlockDelta"]
                    delta = body.get("delta", {})
                    if "text" in delta:
                        yield LLMChunk(text=delta["text"], provider=self.label)
                    elif "toolUse" in delta and body.get("contentBlockIndex") in tools:
                        tools[body["contentBlockIndex"]]["json"] += delta["toolUse"].get("input", "")
                elif "contentBlockStop" in event:
                    b = tools.pop(event["contentBlockStop"].get("contentBlockIndex"), None)
                    if b is not None:
                        yield LLMChunk(tool_call=ToolCall(b["id"], b["name"], parse_arguments(b["json"], self.label)),
                                       provider=self.label)
                elif "messageStop" in event:
                    finish = event["messageStop"].get("stopReason")
        yield LLMChunk(provider=self.label, finish_reason=finish or "end_turn")
