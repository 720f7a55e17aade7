"""LLM vendors: streaming (SSE / AWS event stream) and tool calls, against loopback stubs
in each vendor's documented shape, plus the tool-result round trip in each request shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from providers_stub_server import Reply, StubServer
from providers_vendor_cases import (
    AWS_SECRETS,
    BEDROCK_MODEL,
    NEEDS_BOTO3,
    anthropic_message,
    chat_completion,
    converse_answer,
)

from providers import registry
from providers.errors import ProviderBadResponse, ProviderUnavailable
from providers.fallback import FallbackLLM
from providers.llm.base import ChatMessage, LLMChunk, ToolCall, ToolSpec
from providers.llm.extractive import ExtractiveLLM

TRANSFER = ToolSpec("transfer", "Transfer the caller to a department",
                    {"type": "object", "properties": {"department": {"type": "string"}}, "required": ["department"]})
ASK = [ChatMessage("system", "Be brief."), ChatMessage("user", "Put me through to sales")]
ROUND_TRIP = [*ASK, ChatMessage("assistant", "", tool_calls=(ToolCall("call_1", "transfer", {"department": "sales"}),)),
              ChatMessage("tool", '{"ok": true}', tool_call_id="call_1")]


def oa_chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    return "data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


OPENAI_TEXT_SSE = [oa_chunk({"role": "assistant", "content": ""}), oa_chunk({"content": "We open"}),
                   oa_chunk({"content": " at nine."}), oa_chunk({}, "stop"), "data: [DONE]"]
OPENAI_TOOL_SSE = [
    oa_chunk({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "transfer", "arguments": ""}}]}),
    oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"depart"}}]}),
    oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "ment\": \"sales\"}"}}]}),
    oa_chunk({}, "tool_calls"), "data: [DONE]"]
OPENAI_TOOL_JSON = {**chat_completion(), "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
    "role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "transfer", "arguments": "{\"department\": \"sales\"}"}}]}}]}


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}"


ANTHROPIC_START = sse("message_start", {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [],
    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})


def anthropic_end(stop: str) -> list[str]:
    return [sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                  "usage": {"output_tokens": 12}}),
            sse("message_stop", {"type": "message_stop"})]


ANTHROPIC_TEXT_SSE = [
    ANTHROPIC_START,
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "text", "text": ""}}),
    sse("ping", {"type": "ping"}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "text_delta", "text": "We open"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "text_delta", "text": " at nine."}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    *anthropic_end("end_turn")]
ANTHROPIC_TOOL_SSE = [
    ANTHROPIC_START,
    sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "call_1", "name": "transfer", "input": {}}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"department\":"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "input_json_delta", "partial_json": " \"sales\"}"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    *anthropic_end("tool_use")]
ANTHROPIC_OVERLOADED_SSE = [
    ANTHROPIC_START,
    sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]


def gemini(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate]}


GEMINI_TEXT_SSE = ["data: " + json.dumps(gemini([{"text": "We open"}])),
                   "data: " + json.dumps(gemini([{"text": " at nine."}], "STOP"))]
GEMINI_TOOL = gemini([{"functionCall": {"name": "transfer", "args": {"department": "sales"}}}], "STOP")

BEDROCK_TEXT_EVENTS = [("messageStart", {"role": "assistant"}),
                       ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "We open"}}),
                       ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " at nine."}}),
                       ("contentBlockStop", {"contentBlockIndex": 0}),
                       ("messageStop", {"stopReason": "end_turn"}),
                       ("metadata", {"usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
                                     "metrics": {"latencyMs": 5}})]
BEDROCK_TOOL_EVENTS = [("messageStart", {"role": "assistant"}),
                       ("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {
                           "toolUseId": "call_1", "name": "transfer"}}}),
                       ("contentBlockDelta", {"contentBlockIndex": 0,
                                              "delta": {"toolUse": {"input": "{\"department\""}}}),
                       ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": ": \"sales\"}"}}}),
                       ("contentBlockStop", {"contentBlockIndex": 0}),
                       ("messageStop", {"stopReason": "tool_use"})]

# name → (settings, secrets, complete path, stream path, text stream, tool stream, tool JSON answer)
CASES: dict[str, dict[str, Any]] = {
    "openai": {"settings": lambda u: {"base_url": f"{u}/v1"}, "secrets": {"api_key": "sk-test"},
               "path": "/v1/chat/completions", "stream_path": "/v1/chat/completions",
               "text": Reply(sse=OPENAI_TEXT_SSE), "tool": Reply(sse=OPENAI_TOOL_SSE),
               "tool_json": Reply(json=OPENAI_TOOL_JSON)},
    "openai_compatible": {"settings": lambda u: {"base_url": f"{u}/v1", "model": "llama3.2"}, "secrets": {},
                          "path": "/v1/chat/completions", "stream_path": "/v1/chat/completions",
                          "text": Reply(sse=OPENAI_TEXT_SSE), "tool": Reply(sse=OPENAI_TOOL_SSE),
                          "tool_json": Reply(json=OPENAI_TOOL_JSON)},
    "azure_openai": {"settings": lambda u: {"endpoint": u, "deployment": "dep"}, "secrets": {"api_key": "az"},
                     "path": "/openai/deployments/dep/chat/completions",
                     "stream_path": "/openai/deployments/dep/chat/completions",
                     "text": Reply(sse=OPENAI_TEXT_SSE), "tool": Reply(sse=OPENAI_TOOL_SSE),
                     "tool_json": Reply(json=OPENAI_TOOL_JSON)},
    "anthropic": {"settings": lambda u: {"base_url": u}, "secrets": {"api_key": "ant"},
                  "path": "/v1/messages", "stream_path": "/v1/messages",
                  "text": Reply(sse=ANTHROPIC_TEXT_SSE), "tool": Reply(sse=ANTHROPIC_TOOL_SSE),
                  "tool_json": Reply(json=anthropic_message([{"type": "tool_use", "id": "call_1", "name": "transfer",
                                                              "input": {"department": "sales"}}], "tool_use"))},
    "gemini": {"settings": lambda u: {"base_url": u}, "secrets": {"api_key": "g"},
               "path": "/v1beta/models/gemini-2.0-flash:generateContent",
               "stream_path": "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
               "text": Reply(sse=GEMINI_TEXT_SSE), "tool": Reply(sse=["data: " + json.dumps(GEMINI_TOOL)]),
               "tool_json": Reply(json=GEMINI_TOOL)},
    "bedrock": {"settings": lambda u: {"endpoint_url": u}, "secrets": AWS_SECRETS,
                "path": f"/model/{BEDROCK_MODEL}/converse", "stream_path": f"/model/{BEDROCK_MODEL}/converse-stream",
                "text": Reply(eventstream=BEDROCK_TEXT_EVENTS), "tool": Reply(eventstream=BEDROCK_TOOL_EVENTS),
                "tool_json": Reply(json=converse_answer(
                    [{"toolUse": {"toolUseId": "call_1", "name": "transfer", "input": {"department": "sales"}}}],
                    "tool_use"))},
}


NAMES = [pytest.param(n, marks=[NEEDS_BOTO3] if n == "bedrock" else []) for n in CASES]


def build(name: str, stub: StubServer, **extra: Any) -> Any:
    case = CASES[name]
    return registry.build("llm", name, {**case["settings"](stub.url), "backoff": 0.01, **extra}, case["secrets"])


@pytest.mark.parametrize("name", NAMES)
def test_stream_text_deltas(name: str, stub: StubServer) -> None:
    stub.script("POST", CASES[name]["stream_path"], CASES[name]["text"])
    chunks = list(build(name, stub).stream(ASK))
    assert "".join(c.text for c in chunks) == "We open at nine."
    assert [c.text for c in chunks if c.text] == ["We open", " at nine."]
    assert chunks[-1].finish_reason in {"stop", "end_turn", "STOP"}
    assert all(c.provider == f"llm:{name}" for c in chunks)
    req = stub.calls(CASES[name]["stream_path"])[0]
    if name in ("openai", "openai_compatible", "azure_openai", "anthropic"):
        assert req.json()["stream"] is True
    if name == "gemini":
        assert req.query["alt"] == ["sse"]


@pytest.mark.parametrize("name", NAMES)
def test_stream_tool_call_is_assembled(name: str, stub: StubServer) -> None:
    stub.script("POST", CASES[name]["stream_path"], CASES[name]["tool"])
    chunks = list(build(name, stub).stream(ASK, tools=[TRANSFER]))
    calls = [c.tool_call for c in chunks if c.tool_call]
    assert len(calls) == 1
    assert calls[0].name == "transfer" and calls[0].arguments == {"department": "sales"}
    if name != "gemini":
        assert calls[0].id == "call_1"


@pytest.mark.parametrize("name", NAMES)
def test_complete_with_tools_and_round_trip_shape(name: str, stub: StubServer) -> None:
    stub.script("POST", CASES[name]["path"], CASES[name]["tool_json"])
    provider = build(name, stub)
    result = provider.complete(ASK, tools=[TRANSFER])
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("transfer", {"department": "sales"})]
    first = stub.calls(CASES[name]["path"])[0].json()
    provider.complete(ROUND_TRIP, tools=[TRANSFER])
    second = stub.calls(CASES[name]["path"])[1].json()
    if name in ("openai", "openai_compatible", "azure_openai"):
        assert first["tools"][0]["function"]["name"] == "transfer"
        assert second["messages"][2]["tool_calls"][0]["function"] == {
            "name": "transfer", "arguments": json.dumps({"department": "sales"})}
        assert second["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'}
    elif name == "anthropic":
        assert first["tools"][0]["input_schema"] == TRANSFER.parameters
        assert second["messages"][1]["content"][0] == {"type": "tool_use", "id": "call_1", "name": "transfer",
                                                       "input": {"department": "sales"}}
        assert second["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "call_1",
                                                       "content": '{"ok": true}'}
    elif name == "gemini":
        assert first["tools"][0]["functionDeclarations"][0]["name"] == "transfer"
        assert second["contents"][1]["parts"][0] == {"functionCall": {"name": "transfer",
                                                                      "args": {"department": "sales"}}}
        assert second["contents"][2]["parts"][0] == {"functionResponse": {"name": "transfer",
                                                                          "response": {"ok": True}}}
    else:
        assert first["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": TRANSFER.parameters}
        assert second["messages"][1]["content"][0] == {"toolUse": {"toolUseId": "call_1", "name": "transfer",
                                                                   "input": {"department": "sales"}}}
        assert second["messages"][2]["content"][0]["toolResult"]["toolUseId"] == "call_1"


def test_stream_error_before_first_chunk_falls_back(stub: StubServer) -> None:
    stub.script("POST", "/v1/messages", Reply(sse=ANTHROPIC_OVERLOADED_SSE))
    chain = FallbackLLM([build("anthropic", stub, retries=0), ExtractiveLLM()])
    from providers.llm.base import Passage

    ask = [ChatMessage("user", "When do you open?", passages=(Passage("We open at nine. We close at five."),))]
    chunks: list[LLMChunk] = list(chain.stream(ask))
    assert chunks[0].attempts[0].provider == "llm:anthropic"
    assert chunks[0].attempts[0].error == "ProviderUnavailable"
    assert "".join(c.text for c in chunks).startswith("We open at nine.")


def test_stream_retried_before_first_chunk(stub: StubServer) -> None:
    path = CASES["openai"]["stream_path"]
    stub.script("POST", path, Reply(503, json={"error": {"message": "busy"}}), Reply(sse=OPENAI_TEXT_SSE))
    chunks = list(build("openai", stub, retries=1).stream(ASK))
    assert "".join(c.text for c in chunks) == "We open at nine."
    assert len(stub.calls(path)) == 2


def test_malformed_stream_data_is_bad_response(stub: StubServer) -> None:
    path = CASES["gemini"]["stream_path"]
    stub.script("POST", path, Reply(sse=["data: " + json.dumps(gemini([{"text": "We"}])), "data: {oops"]))
    with pytest.raises(ProviderBadResponse):
        list(build("gemini", stub, retries=0).stream(ASK))


@NEEDS_BOTO3
def test_stream_cut_by_server_error_status(stub: StubServer) -> None:
    stub.script("POST", CASES["bedrock"]["stream_path"],
                Reply(503, json={"message": "down"}, headers={"x-amzn-ErrorType": "ServiceUnavailableException"}))
    with pytest.raises(ProviderUnavailable):
        list(build("bedrock", stub, retries=0).stream(ASK))
