"""The `ask_ai` node with a fake call (progressive recordings, barge-in), fake speech providers, a
fake retriever over real faiss, and the real OpenAI/Anthropic providers against loopback stubs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from providers_stub_server import Reply, StubServer
from rag_fakes import FakeCall, Interrupt, Key, Quiet, Say, ScriptedSTT, ToneTTS

from ivr_flows import load_flow_text
from ivr_flows.context import FlowContext
from ivr_flows.errors import FlowValidationError
from ivr_flows.runner import FlowRunner
from providers import registry
from providers.fallback import FallbackLLM
from providers.llm.extractive import ExtractiveLLM
from providers.tts.cache import TTSCache
from rag.retriever import Retriever

FLOW = """
flow: sec
start: assistant
nodes:
  assistant:
    type: ask_ai
    prompt: "Harbor Street Dental, how can I help?"
    min_score: {min_score}
    max_turns: {max_turns}
    listen: {{max_seconds: 6, end_silence: 400ms, no_input: 2s, max_no_input: 1}}
    max_silence: {max_silence}
    filler: "One moment."
    llm_timeout: {llm_timeout}
    transfer_to: {{front_desk: "1001"}}
    webhooks: {webhooks}
    next: {{unsure: operator, done: bye, transfer: to_target}}
  to_target: {{type: transfer, to: "{{{{ vars.transfer_target }}}}"}}
  operator: {{type: transfer, to: "1000"}}
  bye: {{type: hangup}}
"""


def oa_chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    return "data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def openai_text(*pieces: str) -> Reply:
    return Reply(sse=[oa_chunk({"role": "assistant", "content": ""}), *[oa_chunk({"content": p}) for p in pieces],
                      oa_chunk({}, "stop"), "data: [DONE]"])


def openai_tool(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> Reply:
    return Reply(sse=[
        oa_chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
        oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(arguments)}}]}),
        oa_chunk({}, "tool_calls"), "data: [DONE]"])


def anthropic_sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}"


def anthropic_text(text: str) -> Reply:
    start = anthropic_sse("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})
    return Reply(sse=[
        start,
        anthropic_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}}),
        anthropic_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": text}}),
        anthropic_sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        anthropic_sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                          "stop_sequence": None},
                                        "usage": {"output_tokens": 12}}),
        anthropic_sse("message_stop", {"type": "message_stop"})])


def openai(stub: StubServer, **extra: Any) -> Any:
    return registry.build("llm", "openai", {"base_url": f"{stub.url}/v1", "backoff": 0.01, "retries": 0, **extra},
                          {"api_key": "sk-test"})


def anthropic(stub: StubServer) -> Any:
    return registry.build("llm", "anthropic", {"base_url": stub.url, "retries": 0}, {"api_key": "ant"})


def run(call: FakeCall, tmp_path: Path, llm: Any, retriever: Any, *, min_score: float = 0.3, max_turns: int = 2,
        max_silence: str = "3s", llm_timeout: str = "2s", webhooks: str = "[]",
        allowed_hosts: frozenset[str] = frozenset()) -> tuple[Any, FlowContext, ToneTTS]:
    flow = load_flow_text(FLOW.format(min_score=min_score, max_turns=max_turns, max_silence=max_silence,
                                      llm_timeout=llm_timeout, webhooks=webhooks), "sec.yaml")
    tts = ToneTTS()
    llm.warm_up()   # as the controller does at connect: SDK clients exist before the first turn
    ctx = FlowContext(call=call, recordings_dir=tmp_path / "rec", allowed_url_hosts=allowed_hosts,
                      extensions={"llm": llm, "retriever": retriever, "stt": ScriptedSTT(call), "tts": tts,
                                  "tts_cache": TTSCache(tmp_path / "tts", "dental")})
    result = FlowRunner(flow, ctx).run()
    return result, ctx, tts


def test_grounded_answer_is_streamed_and_the_turn_recorded(tmp_path: Path, knowledge: Retriever,
                                                           stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions",
                openai_text("We are open on Saturdays", " from 9 am to 1 pm. ", "See you then!"))
    call = FakeCall([Say("what are your saturday opening hours"), Say("thanks, bye")])
    result, ctx, tts = run(call, tmp_path, openai(stub), knowledge)
    assert result.outcome == "hangup" and result.path == ["assistant", "bye"]
    assert result.steps[0].outcome == "done"
    # The answer was split into sentences, each synthesized and played in order.
    assert "We are open on Saturdays from 9 am to 1 pm." in tts.texts and "See you then!" in tts.texts
    assert tts.texts.index("We are open on Saturdays from 9 am to 1 pm.") < tts.texts.index("See you then!")
    # The passages reached the model with their sources, and the rules forbid guessing.
    body = stub.calls("/v1/chat/completions")[0].json()
    assert "NO_ANSWER" in body["messages"][0]["content"]
    assert "Saturdays we are open from 9 am to 1 pm" in body["messages"][-1]["content"]
    assert "hours.md" in body["messages"][-1]["content"]
    assert body["stream"] is True and {t["function"]["name"] for t in body["tools"]} == {"transfer", "end_call"}
    turn = ctx.extensions["turns"][0]
    assert turn["caller"] == "what are your saturday opening hours" and turn["outcome"] == "answer"
    assert turn["sources"][0]["source"].startswith("hours.md") and turn["sources"][0]["score"] >= 0.3
    assert turn["answer"] == "We are open on Saturdays from 9 am to 1 pm. See you then!"
    assert turn["llm"] == "llm:openai" and turn["stt"] == "stt:scripted"
    for stage in ("end_of_speech_ms", "stt_ms", "retrieval_ms", "llm_first_token_ms", "tts_first_audio_ms",
                  "playback_start_ms"):
        assert stage in turn["latency_ms"], stage
    # Our VAD ended each utterance: the record was broken, not left to FreeSWITCH's silence timer.
    assert ("break_media", "") in call.log
    assert ctx.extensions["turns"][1]["outcome"] == "done"


def test_out_of_scope_question_is_unsure_without_calling_a_model_that_cannot_act(
        tmp_path: Path, knowledge: Retriever) -> None:
    call = FakeCall([Say("can you repair my car engine")])
    result, ctx, tts = run(call, tmp_path, ExtractiveLLM(), knowledge)
    assert result.path == ["assistant", "operator"] and result.steps[0].outcome == "unsure"
    assert ctx.extensions["turns"][0]["outcome"] == "unsure"
    assert not any("engine" in t for t in tts.texts)
    assert ("transfer", "1000") in call.log


def test_model_that_cannot_answer_takes_unsure_and_says_nothing_of_it(tmp_path: Path, knowledge: Retriever,
                                                                     stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions", openai_text("NO_", "ANSWER"))
    call = FakeCall([Say("how much is a porcelain crown")])
    result, ctx, tts = run(call, tmp_path, openai(stub), knowledge)
    assert result.steps[0].outcome == "unsure"
    assert not any("NO_ANSWER" in t for t in tts.texts)
    assert ctx.extensions["turns"][0]["outcome"] == "unsure"


def test_transfer_tool_sets_the_target_and_follows_the_edge(tmp_path: Path, knowledge: Retriever,
                                                            stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions", openai_tool("transfer", {"target": "front_desk"}))
    call = FakeCall([Say("can I book a cleaning with the hygienist")])
    result, ctx, _ = run(call, tmp_path, openai(stub), knowledge)
    assert result.steps[0].outcome == "transfer" and result.path == ["assistant", "to_target"]
    assert result.vars["transfer_target"] == "1001" and ("transfer", "1001") in call.log


def test_webhook_tool_round_trip(tmp_path: Path, knowledge: Retriever, stub: StubServer) -> None:
    hook = StubServer()
    try:
        hook.script("POST", "/next", Reply(json={"appointment": "Tuesday at 10 am"}))
        stub.script("POST", "/v1/chat/completions", openai_tool("next_appointment", {"phone": "5551234"}),
                    openai_text("Your next appointment is Tuesday at 10 am."))
        webhooks = ('[{name: next_appointment, description: "the caller\'s next appointment", '
                    f'url: "{hook.url}/next", parameters: {{phone: {{type: string}}}}}}]')
        call = FakeCall([Say("when is my next appointment for a check-up")])
        result, ctx, tts = run(call, tmp_path, openai(stub), knowledge, max_turns=1, webhooks=webhooks,
                               allowed_hosts=frozenset({"127.0.0.1"}))
        assert hook.calls("/next")[0].json() == {"phone": "5551234"}
        second = stub.calls("/v1/chat/completions")[1].json()
        assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1",
                                          "content": '{"appointment": "Tuesday at 10 am"}'}
        assert "Your next appointment is Tuesday at 10 am." in tts.texts
        assert result.steps[0].outcome == "done"
        assert ctx.extensions["turns"][0]["tool_calls"] == [{"name": "next_appointment"}]
    finally:
        hook.close()


def test_llm_timeout_falls_back_to_the_next_provider(tmp_path: Path, knowledge: Retriever) -> None:
    slow, fast = StubServer(), StubServer()
    try:
        slow.script("POST", "/v1/chat/completions", replace(openai_text("too late."), delay=4.0))
        fast.script("POST", "/v1/messages", anthropic_text("We accept Delta Dental, Cigna and MetLife."))
        llm = FallbackLLM([openai(slow), anthropic(fast)])
        llm.warm_up()   # SDK clients built before the call, as at connect
        call = FakeCall([Say("which dental insurance plans do you accept")])
        result, ctx, tts = run(call, tmp_path, llm, knowledge, max_turns=1, llm_timeout="1500ms")
        turn = ctx.extensions["turns"][0]
        assert "We accept Delta Dental, Cigna and MetLife." in tts.texts
        assert turn["llm"] == "llm:anthropic"
        assert [(a["provider"], a["ok"]) for a in turn["llm_attempts"]] == [("llm:openai", False),
                                                                           ("llm:anthropic", True)]
        assert result.steps[0].outcome == "done"
    finally:
        slow.close()
        fast.close()


def test_every_llm_failing_reads_the_best_passage(tmp_path: Path, knowledge: Retriever, stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions", Reply(503, json={"error": {"message": "down"}}))
    call = FakeCall([Say("where can I park my car")])
    result, ctx, tts = run(call, tmp_path, FallbackLLM([openai(stub)]), knowledge, max_turns=1)
    turn = ctx.extensions["turns"][0]
    assert turn["fallback"] == "extractive" and turn["outcome"] == "answer"
    assert any("Free parking for patients" in t for t in tts.texts)


def test_a_slow_answer_plays_the_filler_instead_of_dead_air(tmp_path: Path, knowledge: Retriever,
                                                             stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions", replace(openai_text("Check-ups cost 65 dollars."), delay=2.0))
    call = FakeCall([Say("how much is a check-up")])
    result, ctx, tts = run(call, tmp_path, openai(stub, timeout=10), knowledge, max_turns=1, max_silence="300ms",
                           llm_timeout="10s")
    turn = ctx.extensions["turns"][0]
    assert turn["fillers"] >= 1 and "One moment." in tts.texts
    assert tts.texts.index("One moment.") < tts.texts.index("Check-ups cost 65 dollars.")


def test_dtmf_during_the_answer_barges_in_and_starts_the_next_turn(tmp_path: Path, knowledge: Retriever,
                                                                   stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions",
                openai_text("A routine check-up costs 65 dollars. A cleaning costs 90 dollars. ",
                            "Children under 12 pay 40 dollars."),
                openai_text("We are at 42 Harbor Street."))
    # playback 1 is the greeting; playback 2 the answer's first sentence: the caller presses 1.
    call = FakeCall([Say("how much is a check-up"), Say("where is the clinic address")],
                    interrupts=[Interrupt(2, digit="1")])
    result, ctx, tts = run(call, tmp_path, openai(stub), knowledge, max_turns=2)
    first, second = ctx.extensions["turns"][:2]
    assert first["barge_in"] == "dtmf" and first["spoken_sentences"] == 1
    assert "Children under 12 pay 40 dollars." not in call.played()
    assert second["caller"] == "where is the clinic address" and "We are at 42 Harbor Street." in tts.texts


def test_caller_speech_during_the_answer_barges_in(tmp_path: Path, knowledge: Retriever, stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions",
                openai_text("Teeth whitening in the office costs 350 dollars, and a take-home kit costs 180 dollars."),
                openai_text("Yes, payment plans are available over 500 dollars."))
    call = FakeCall([Say("how much is teeth whitening")],
                    interrupts=[Interrupt(2, speech=Say("do you have payment plans", 1.0))])
    result, ctx, _ = run(call, tmp_path, openai(stub), knowledge, max_turns=2)
    first, second = ctx.extensions["turns"][:2]
    assert first["barge_in"] == "speech" and ("break_media", "") in call.log
    assert any(op == "record_session" for op, _ in call.log) and any(op == "stop_record_session" for op, _ in call.log)
    assert second["caller"] == "do you have payment plans"


@pytest.mark.parametrize("heard", [Key("5"), Quiet()], ids=["key", "silence"])
def test_silence_or_a_key_while_listening_is_no_input(tmp_path: Path, knowledge: Retriever, heard: Any) -> None:
    call = FakeCall([heard])
    result, ctx, _ = run(call, tmp_path, ExtractiveLLM(), knowledge)
    turn = ctx.extensions["turns"][0]
    assert turn["outcome"] == "no_input" and turn.get("dtmf", False) is isinstance(heard, Key)
    assert result.steps[0].outcome == "unsure" and result.path[-1] == "operator"


def test_node_validation() -> None:
    bad = FLOW.format(min_score=0.3, max_turns=2, max_silence="3s", llm_timeout="2s", webhooks="[]").replace(
        'front_desk: "1001"', 'front_desk: "10 01"')
    with pytest.raises(FlowValidationError, match="not an extension"):
        load_flow_text(bad, "bad.yaml")
    hooks = '[{name: transfer, description: x, url: "https://x.example/a"}]'
    with pytest.raises(FlowValidationError, match="other than transfer"):
        load_flow_text(FLOW.format(min_score=0.3, max_turns=2, max_silence="3s", llm_timeout="2s", webhooks=hooks),
                       "bad.yaml")
    hooks = '[{name: crm, description: x, url: "https://evil.example/a"}]'
    with pytest.raises(FlowValidationError, match=r"evil\.example"):
        load_flow_text(FLOW.format(min_score=0.3, max_turns=2, max_silence="3s", llm_timeout="2s", webhooks=hooks),
                       "bad.yaml", allowed_url_hosts=["crm.example.com"])
