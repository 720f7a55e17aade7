"""Conversations: history passed to the secretary, idle expiry, the decision mapped to the channel
(answer → reply; unsure/transfer → a signed handoff webhook with the transcript and the bot quiet until
`ivr whatsapp release`; end → closed), business hours, and long answers in several messages."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from providers_stub_server import Reply, StubServer
from test_rag_node import openai_text, openai_tool
from twilio_stub import TwilioStub
from whatsapp_harness import Channel, wait_for

from ivr_flows.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from scripts.cli import cli
from whatsapp.store import WhatsAppStore

SENDER = "whatsapp:+15557654321"
pytestmark = pytest.mark.models


@pytest.fixture
def llm() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def hook() -> Iterator[StubServer]:
    server = StubServer()
    server.script("POST", "/handoff", Reply(json={"ok": True}))
    yield server
    server.close()


def openai_chain(llm: StubServer) -> list[tuple[str, dict, dict]]:
    return [("openai_compatible", {"base_url": f"{llm.url}/v1", "model": "m", "retries": 0}, {})]


def done(store: WhatsAppStore, tenant_id: int, count: int) -> list:
    return wait_for(lambda: len([m for m in store.messages(tenant_id) if m.state == "done"]) >= count
                    and sorted(store.messages(tenant_id), key=lambda m: m.id), timeout=60)


def test_the_history_goes_to_the_model_and_an_idle_conversation_starts_anew(
        channel: Channel, twilio: TwilioStub, llm: StubServer) -> None:
    llm.script("POST", "/v1/chat/completions", openai_text("We are open on Saturdays from 9 am to 1 pm."),
               openai_text("Yes, a cleaning costs 90 dollars."), openai_text("We are at 14 Harbor Street."))
    tenant = channel.tenant("dental.example", llm=openai_chain(llm))
    account = channel.account(tenant, idle_minutes=30)
    channel.serve()
    worker = channel.start_workers(2)
    channel.post(account, SENDER, "When are you open on Saturday?")
    done(channel.store, tenant.tenant_id, 1)
    channel.post(account, SENDER, "And how much is a cleaning?")
    first, second = done(channel.store, tenant.tenant_id, 2)
    assert first.conversation_id == second.conversation_id
    sent = [m["content"] for m in llm.calls("/v1/chat/completions")[1].json()["messages"]]
    assert sent[1] == "When are you open on Saturday?"
    assert sent[2] == "We are open on Saturdays from 9 am to 1 pm."
    assert "how much is a cleaning" in sent[3]

    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=31)
    worker.processor.clock = lambda: later
    channel.post(account, SENDER, "Where is the clinic?")
    third = done(channel.store, tenant.tenant_id, 3)[2]
    assert third.conversation_id != first.conversation_id
    old = channel.store.conversation(tenant.tenant_id, first.conversation_id)
    assert old.state == "closed" and old.close_reason == "idle"
    third_request = [m["content"] for m in llm.calls("/v1/chat/completions")[2].json()["messages"]]
    assert len(third_request) == 2            # system + the question: the old history is not carried over
    assert [r.body for r in twilio.sent_to(SENDER)][-1] == "We are at 14 Harbor Street."


def test_unsure_hands_the_conversation_to_a_person_until_it_is_released(
        channel: Channel, twilio: TwilioStub, llm: StubServer, hook: StubServer) -> None:
    llm.script("POST", "/v1/chat/completions", openai_text("NO_ANSWER"),
               openai_text("We are open on Saturdays from 9 am to 1 pm."))
    tenant = channel.tenant("dental.example", llm=openai_chain(llm))
    account = channel.account(tenant, handoff_url=f"{hook.url}/handoff")
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "Can I bring my dog to the appointment?")
    [told] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    assert told.body.startswith("I'll pass you to a member of our team")
    [call] = wait_for(lambda: hook.calls("/handoff"), timeout=30)
    assert verify("handoff-secret", call.header(TIMESTAMP_HEADER), call.body, call.header(SIGNATURE_HEADER))
    payload = call.json()
    assert payload["event"] == "handoff" and payload["reason"] == "unsure" and payload["contact"] == SENDER
    assert payload["transcript"][0]["text"] == "Can I bring my dog to the appointment?"
    [message] = channel.store.messages(tenant.tenant_id)
    assert call.header("X-IVR-Correlation-Id") == message.correlation_id
    conversation = channel.store.conversation(tenant.tenant_id, message.conversation_id)
    assert conversation.state == "handoff"

    # While a person has it, the bot is quiet: the message goes to the person, not to the model.
    channel.post(account, SENDER, "Hello? Anyone there?")
    forwarded = wait_for(lambda: len(hook.calls("/handoff")) == 2 and hook.calls("/handoff"), timeout=30)
    assert forwarded[1].json()["event"] == "message"
    assert len(twilio.sent_to(SENDER)) == 1 and len(llm.calls("/v1/chat/completions")) == 1

    result = CliRunner().invoke(cli, ["whatsapp", "release", "dental.example", str(conversation.id),
                                      "--url", channel.url])
    assert result.exit_code == 0, result.output
    channel.post(account, SENDER, "When are you open on Saturday?")
    wait_for(lambda: len(twilio.sent_to(SENDER)) == 2, timeout=60)
    assert twilio.sent_to(SENDER)[1].body == "We are open on Saturdays from 9 am to 1 pm."


def test_a_failing_handoff_webhook_is_retried(channel: Channel, twilio: TwilioStub, llm: StubServer) -> None:
    flaky = StubServer()
    try:
        flaky.script("POST", "/handoff", Reply(503), Reply(json={"ok": True}))
        llm.script("POST", "/v1/chat/completions", openai_tool("transfer", {"target": "person"}))
        tenant = channel.tenant("dental.example", llm=openai_chain(llm))
        # An assistant flow with a transfer target, so the model may call `transfer`.
        tenant.add_version("main", "flow: main\nstart: a\nnodes:\n  a:\n    type: ask_ai\n"
                           "    transfer_to: {person: \"1000\"}\n    next: {done: b, unsure: b}\n  b: {type: hangup}\n",
                           author="test")
        account = channel.account(tenant, handoff_url=f"{flaky.url}/handoff", assistant_flow="main")
        channel.serve()
        channel.start_workers(2)
        channel.post(account, SENDER, "I want to talk to a person")
        calls = wait_for(lambda: len(flaky.calls("/handoff")) == 2 and flaky.calls("/handoff"), timeout=60)
        assert calls[0].header("Idempotency-Key") == calls[1].header("Idempotency-Key")
        assert calls[1].json()["reason"] == "transfer:person"
        [message] = done(channel.store, tenant.tenant_id, 1)
        assert message.attempts == 2 and message.outcome == "handoff"
        assert len(twilio.sent_to(SENDER)) == 1            # the contact was told once, not on every try
    finally:
        flaky.close()


def test_out_of_hours_the_configured_reply_goes_out(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant, hours={"daily": "closed"}, out_of_hours_reply="We're closed; back at 8.")
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "When are you open on Saturday?")
    [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    assert reply.body == "We're closed; back at 8."
    assert [m.outcome for m in done(channel.store, tenant.tenant_id, 1)] == ["out_of_hours"]


def test_a_long_answer_goes_out_in_parts_of_at_most_1600_characters(
        channel: Channel, twilio: TwilioStub, llm: StubServer) -> None:
    sentence = "Our clinic offers cleanings, check-ups, fillings, crowns and whitening at fair prices. "
    llm.script("POST", "/v1/chat/completions", openai_text(*[sentence] * 50))
    tenant = channel.tenant("dental.example", llm=openai_chain(llm))
    account = channel.account(tenant)
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "What treatments do you offer and how much do they cost?")
    parts = wait_for(lambda: len(twilio.sent_to(SENDER)) == 3 and twilio.sent_to(SENDER), timeout=60)
    assert all(len(p.body) <= 1600 for p in parts) and all(p.body.endswith(".") for p in parts)
    assert " ".join(p.body for p in parts) == (sentence * 50).strip()


def test_the_conversations_commands_show_history_without_numbers(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "Where is the clinic?")
    [message] = done(channel.store, tenant.tenant_id, 1)
    listed = CliRunner().invoke(cli, ["whatsapp", "conversations", "list", "dental.example", "--url", channel.url])
    assert listed.exit_code == 0 and "***4321" in listed.output and "+15557654321" not in listed.output
    shown = CliRunner().invoke(cli, ["whatsapp", "conversations", "show", "dental.example",
                                     str(message.conversation_id), "--json", "--url", channel.url])
    data = json.loads(shown.output)
    assert data["history"][0]["text"] == "Where is the clinic?" and data["messages"][0]["state"] == "done"
    assert data["messages"][0]["correlation_id"] == message.correlation_id
    other = CliRunner().invoke(cli, ["whatsapp", "conversations", "show", str(tenant.tenant_id),
                                     str(message.conversation_id + 99),
                                     "--url", channel.url])
    assert other.exit_code != 0 and "no conversation" in other.output
