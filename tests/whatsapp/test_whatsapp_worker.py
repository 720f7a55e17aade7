"""Workers on both queue backends: a message answered from the tenant's documents with the local
providers and sent through the twilio SDK to the loopback Twilio; duplicates answered once; delivery
status callbacks; tenant isolation."""

from __future__ import annotations

from pathlib import Path

import pytest
from twilio_stub import TwilioStub
from whatsapp_harness import KNOWLEDGE, Channel, wait_for

SENDER = "whatsapp:+15557654321"

pytestmark = pytest.mark.models


@pytest.fixture
def queued_channel(tmp_path: Path, twilio: TwilioStub, queue_url: str) -> Channel:
    c = Channel(tmp_path, twilio, queue_url=queue_url)
    yield c
    c.close()


def test_a_question_is_answered_from_the_documents_on_each_queue_backend(queued_channel: Channel,
                                                                          twilio: TwilioStub) -> None:
    channel = queued_channel
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    channel.serve()
    channel.start_workers(4)
    assert channel.post(account, SENDER, "When are you open on Saturday?").status_code == 200
    [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    assert "Saturdays we are open from 9 am to 1 pm" in reply.body
    assert reply.from_ == account.number and reply.account_sid == account.sid
    message = wait_for(lambda: [m for m in channel.store.messages(tenant.tenant_id) if m.state == "done"])[0]
    assert message.outcome == "answered" and message.attempts == 1
    conversation = channel.store.conversation(tenant.tenant_id, message.conversation_id)
    assert [(e.role, e.kind) for e in conversation.history] == [("user", "text"), ("assistant", "text")]
    assert conversation.history[1].text == reply.body


def test_duplicate_deliveries_get_one_reply(queued_channel: Channel, twilio: TwilioStub) -> None:
    import gevent

    channel = queued_channel
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    channel.serve()
    channel.start_workers(4)
    sid = "SM" + "d" * 32
    jobs = [gevent.spawn(channel.post, account, SENDER, "How much is a cleaning?", message_sid=sid) for _ in range(4)]
    gevent.joinall(jobs, timeout=20)
    assert all(j.value.status_code == 200 for j in jobs)
    wait_for(lambda: channel.store.counts() == {"done": 1}, timeout=60)
    # A late redelivery after the answer went out changes nothing either.
    assert channel.post(account, SENDER, "How much is a cleaning?", message_sid=sid).status_code == 200
    gevent.sleep(1.5)
    assert len(twilio.sent_to(SENDER)) == 1 and channel.store.counts() == {"done": 1}


def test_status_callbacks_record_each_reply_delivery(tmp_path: Path, twilio: TwilioStub) -> None:
    channel = Channel(tmp_path, twilio)
    try:
        tenant = channel.tenant("dental.example")
        account = channel.account(tenant)
        channel.serve(public=True)        # Twilio calls back the public URL: here, this loopback server
        channel.start_workers(2)
        channel.post(account, SENDER, "Where are you?")
        [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
        assert reply.status_callback.startswith(f"{channel.base_url}/twilio/status?cid=")
        assert twilio.status_callback(reply, "delivered").status_code == 200
        message = wait_for(lambda: [m for m in channel.store.messages(tenant.tenant_id) if m.state == "done"])[0]
        [part] = channel.store.outbound(message)
        assert part.twilio_sid == reply.sid and part.delivery_status == "delivered"
        # A forged callback (signed with another token) changes nothing.
        twilio.tokens[reply.account_sid], real = "wrong", twilio.tokens[reply.account_sid]
        assert twilio.status_callback(reply, "failed").status_code == 403
        twilio.tokens[reply.account_sid] = real
        assert channel.store.outbound(message)[0].delivery_status == "delivered"
    finally:
        channel.close()


def test_tenants_answer_from_their_own_documents_and_see_only_their_own_conversations(
        channel: Channel, twilio: TwilioStub, tmp_path: Path) -> None:
    other_docs = tmp_path / "bakery"
    other_docs.mkdir()
    (other_docs / "hours.md").write_text("# Opening hours\n\nThe bakery opens at 6 am every day, "
                                          "Saturdays included, and closes at 2 pm.\n")
    dental = channel.tenant("dental.example", docs=(KNOWLEDGE,))
    bakery = channel.tenant("bakery.example", docs=(other_docs,))
    dental_account = channel.account(dental)
    bakery_account = channel.account(bakery)
    channel.serve()
    channel.start_workers(4)
    channel.post(dental_account, SENDER, "When are you open on Saturday?")
    channel.post(bakery_account, SENDER, "When are you open on Saturday?")
    wait_for(lambda: len(twilio.sent_to(SENDER)) == 2, timeout=60)
    by_sender = {r.from_: r.body for r in twilio.sent_to(SENDER)}
    assert "9 am to 1 pm" in by_sender[dental_account.number] and "bakery" not in by_sender[dental_account.number]
    assert "6 am" in by_sender[bakery_account.number] and "Harbor" not in by_sender[bakery_account.number]

    # The same contact has one conversation per tenant, and neither tenant can read the other's.
    [dental_conv] = channel.store.conversations(dental.tenant_id)
    [bakery_conv] = channel.store.conversations(bakery.tenant_id)
    from whatsapp.store import WhatsAppNotFound

    with pytest.raises(WhatsAppNotFound):
        channel.store.conversation(bakery.tenant_id, dental_conv.id)
    with pytest.raises(WhatsAppNotFound):
        channel.store.release(dental.tenant_id, bakery_conv.id)
    with pytest.raises(WhatsAppNotFound):
        channel.store.account(bakery.tenant_id, dental_account.id)
    # A message signed for one tenant's account but addressed to the other's number is refused.
    from twilio_stub import inbound_fields

    fields = inbound_fields(dental_account.sid, bakery_account.number, SENDER, "hello")
    assert channel.post(dental_account, SENDER, fields=fields).status_code == 200   # not a route of ours
    assert len(channel.store.messages(bakery.tenant_id)) == 1
