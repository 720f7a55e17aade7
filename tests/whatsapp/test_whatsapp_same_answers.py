"""A clinic's callers and WhatsApp contacts get the same answers: the same question through the `ask_ai`
node (a call, with the voice adapter: listen, STT, speak) and through the WhatsApp worker (the same
tenant, documents, providers and node settings via ``assistant_flow``) gives the same answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from rag_fakes import FakeCall, Say, ScriptedSTT, ToneTTS
from twilio_stub import TwilioStub
from whatsapp_harness import Channel, wait_for

from ivr_flows import load_flow_text
from ivr_flows.context import FlowContext
from ivr_flows.runner import FlowRunner
from providers.tts.cache import TTSCache
from rag.services import tenant_providers, tenant_retriever

pytestmark = pytest.mark.models

FLOW = """
flow: main
start: assistant
nodes:
  assistant:
    type: ask_ai
    instructions: "You are Harbor Street Dental's receptionist."
    min_score: 0.35
    top_k: 3
    max_turns: 1
    listen: {max_seconds: 6, end_silence: 400ms, no_input: 2s, max_no_input: 1}
    next: {unsure: bye, done: bye}
  bye: {type: hangup}
"""

QUESTIONS = ["When are you open on Saturday?", "How much is a cleaning?", "Is there parking near the clinic?",
             "Can I pay with bitcoin on the moon?"]


def phone_answer(channel: Channel, tenant_id: int, question: str, tmp_path: Path) -> tuple[str, str]:
    """What a caller asking `question` hears, and the node's outcome for it."""
    from schema.store import TenantStore

    store = TenantStore(channel.sessions, tenant_id)
    providers = tenant_providers(store)
    retriever = tenant_retriever(channel.engine, tenant_id, providers.embeddings)
    call = FakeCall([Say(question)], speed=4.0)
    ctx = FlowContext(call=call, recordings_dir=tmp_path / "rec",
                      extensions={"llm": providers.llm, "retriever": retriever, "stt": ScriptedSTT(call),
                                  "tts": ToneTTS(), "tts_cache": TTSCache(tmp_path / "tts", "dental")})
    FlowRunner(load_flow_text(FLOW, "main.yaml"), ctx).run()
    [turn] = ctx.extensions["turns"]
    return turn.get("answer", ""), turn["outcome"]


def test_the_same_question_gets_the_same_answer_by_phone_and_on_whatsapp(
        channel: Channel, twilio: TwilioStub, tmp_path: Path) -> None:
    tenant = channel.tenant("dental.example")
    tenant.add_version("main", FLOW, author="test")
    account = channel.account(tenant, assistant_flow="main:assistant")
    channel.serve()
    channel.start_workers(2)
    for i, question in enumerate(QUESTIONS):
        spoken, outcome = phone_answer(channel, tenant.tenant_id, question, tmp_path)
        contact = f"whatsapp:+1555111000{i}"
        channel.post(account, contact, question)
        [reply] = wait_for(lambda c=contact: twilio.sent_to(c), timeout=60)
        if outcome == "answer":
            assert spoken and reply.body == spoken, question
        else:
            # Not in the documents: the caller goes to a person (`unsure`), the contact is handed over.
            assert outcome == "unsure" and reply.body.startswith("I'll pass you to a member of our team"), question
    outcomes = sorted(m.outcome for m in channel.store.messages(tenant.tenant_id))
    assert outcomes.count("answered") == 3 and outcomes.count("handoff") == 1
