"""Preemptive answers: prepared at the caller's pause on the speculative transcript, dropped when the
caller goes on, handed over when the end of speech confirms them; no webhook runs before that."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Queue
from providers_stub_server import Reply, StubServer
from rag_fakes import FakeCall, Say, SayWithPause, ScriptedSTT, ToneTTS
from test_rag_node import openai, openai_text, openai_tool

from ivr_flows import load_flow_text
from ivr_flows.context import FlowContext
from ivr_flows.runner import FlowRunner
from ivr_flows.speech_listen import listen
from ivr_flows.turn_answer import AnswerPlan, WebhookToolSpec, answer_turn, system_message
from providers.tts.cache import TTSCache
from rag.retriever import Retriever

FLOW = """
flow: sec
start: assistant
nodes:
  assistant:
    type: ask_ai
    max_turns: 1
    listen: {max_seconds: 8, end_silence: 1500ms, no_input: 3s, max_no_input: 1}
    preemptive: %s
    next: {unsure: bye, done: bye}
  bye: {type: hangup}
"""


class Preparation:
    def __init__(self, text: str) -> None:
        self.text = text
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_listen_prepares_at_a_pause_and_drops_it_when_the_caller_goes_on(tmp_path: Path) -> None:
    call = FakeCall([SayWithPause("what are your", "opening hours")], speed=2.0)
    ctx = FlowContext(call=call, recordings_dir=tmp_path, extensions={"stt": ScriptedSTT(call)})
    prepared: list[Preparation] = []

    def prepare(text: str) -> Preparation:
        prepared.append(Preparation(text))
        return prepared[-1]

    heard = listen(ctx, tmp_path / "u.wav", max_seconds=8, end_silence=1.5, no_input=3, prepare=prepare)
    assert heard.transcript == "what are your opening hours" and heard.speculative
    assert prepared[0].text == "what are your" and prepared[0].cancelled        # the caller went on
    assert prepared[-1].text == "what are your opening hours" and not prepared[-1].cancelled
    assert heard.prepared is prepared[-1]                                        # handed over
    assert all(p.cancelled for p in prepared[:-1])


def test_a_webhook_of_an_uncommitted_answer_waits(stub: StubServer) -> None:
    hook = StubServer()
    try:
        hook.script("POST", "/next", Reply(json={"appointment": "Tuesday at 10 am"}))
        stub.script("POST", "/v1/chat/completions", openai_tool("next_appointment", {"phone": "5551234"}),
                    openai_text("Your next appointment is Tuesday at 10 am."))
        llm = openai(stub)
        llm.warm_up()
        commit = Event()
        plan = AnswerPlan(llm=llm, system=system_message("", tools=True), history=[], question="when is my visit",
                          passages=[], grounded=False, transfer_targets={}, allow_end_call=False,
                          webhooks=[WebhookToolSpec("next_appointment", "the next appointment", f"{hook.url}/next",
                                                    {"phone": {"type": "string"}})],
                          llm_timeout=5.0, commit=commit)
        ctx = FlowContext(call=FakeCall([]), allowed_url_hosts=frozenset({"127.0.0.1"}))
        events: Queue = Queue()
        job = gevent.spawn(answer_turn, ctx, plan, events)
        deadline = time.monotonic() + 10
        while not stub.calls("/v1/chat/completions") and time.monotonic() < deadline:
            gevent.sleep(0.02)
        gevent.sleep(0.3)
        assert hook.calls("/next") == [] and not job.ready()       # the tool waits for the commit
        commit.set()
        decision = job.get(timeout=10)
        assert len(hook.calls("/next")) == 1
        assert decision.kind == "answer" and decision.text == "Your next appointment is Tuesday at 10 am."
    finally:
        hook.close()


def run(call: FakeCall, tmp_path: Path, llm: Any, retriever: Retriever, *, preemptive: bool) -> tuple[Any, Any, Any]:
    flow = load_flow_text(FLOW % ("true" if preemptive else "false"), "sec.yaml")
    tts = ToneTTS()
    llm.warm_up()
    ctx = FlowContext(call=call, recordings_dir=tmp_path / "rec",
                      extensions={"llm": llm, "retriever": retriever, "stt": ScriptedSTT(call), "tts": tts,
                                  "tts_cache": TTSCache(tmp_path / "tts", "dental")})
    return FlowRunner(flow, ctx).run(), ctx, tts


def test_the_answer_to_the_whole_question_is_prepared_during_the_silence_and_played_once(
        tmp_path: Path, knowledge: Retriever, stub: StubServer) -> None:
    for _ in range(3):
        stub.script("POST", "/v1/chat/completions", openai_text("We are open on Saturdays from 9 am to 1 pm."))
    call = FakeCall([SayWithPause("what are your", "saturday opening hours")], speed=2.0)
    result, ctx, tts = run(call, tmp_path, openai(stub), knowledge, preemptive=True)
    assert result.steps[0].outcome == "done"
    turn = ctx.extensions["turns"][0]
    assert turn["caller"] == "what are your saturday opening hours" and turn["outcome"] == "answer"
    assert turn["preemptive"] is True and turn["latency_ms"]["prepared_ahead_ms"] > 0
    # The last request is the whole question; an earlier one (the half question) was dropped unspoken.
    requests = [c.json()["messages"][-1]["content"] for c in stub.calls("/v1/chat/completions")]
    assert "saturday opening hours" in requests[-1]
    assert all("saturday" not in r for r in requests[:-1])
    assert tts.texts.count("We are open on Saturdays from 9 am to 1 pm.") == 1
    assert [k for k, _ in call.log].count("playback") == 1


def test_preemptive_false_prepares_nothing_before_the_end_of_speech(tmp_path: Path, knowledge: Retriever,
                                                                     stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions", openai_text("We are open on Saturdays from 9 am to 1 pm."))
    call = FakeCall([Say("what are your saturday opening hours")], speed=2.0)
    result, ctx, _tts = run(call, tmp_path, openai(stub), knowledge, preemptive=False)
    turn = ctx.extensions["turns"][0]
    assert turn["outcome"] == "answer" and "preemptive" not in turn
    assert len(stub.calls("/v1/chat/completions")) == 1
