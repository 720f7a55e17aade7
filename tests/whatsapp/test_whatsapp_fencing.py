"""A worker whose lease lapsed (a stalled process: its heartbeat could not run) and whose message another
worker took over cannot write or send anything for it any more: the claim's attempt number fences it."""

from __future__ import annotations

import datetime as dt

import pytest
from twilio_stub import TwilioStub
from whatsapp_harness import Channel

from whatsapp.errors import LeaseLost
from whatsapp.processing import MessageProcessor
from whatsapp.secretaries import SecretaryBook
from whatsapp.store import HistoryEntry, OutboundPlan

SENDER = "whatsapp:+15557654321"


def test_a_stale_holder_is_fenced_off_and_the_new_one_answers_once(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example", docs=())
    account = channel.account(tenant)
    channel.serve()
    channel.post(account, SENDER, "Hello")                     # stored and queued; no worker runs
    [message] = channel.store.messages(tenant.tenant_id)
    store = channel.store

    state, first = store.claim(message.id, lease=30)
    assert (state, first) == ("claimed", 1)
    assert store.claim(message.id, lease=30) == ("busy", 0)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=31)    # the first holder stalled past its lease
    state, second = store.claim(message.id, lease=30, now=later)
    assert (state, second) == ("claimed", 2)

    conversation = store.open_conversation(store.account(tenant.tenant_id, account.id), SENDER,
                                           now=dt.datetime.now(dt.UTC))
    said = (HistoryEntry("user", "Hello", "now", message.id),)
    with pytest.raises(LeaseLost):
        store.record_turn(message, conversation.id, entries=said, outbound=(OutboundPlan("reply", "stale"),),
                          outcome="answered", handoff=False, now=dt.datetime.now(dt.UTC), attempt=first, lease=30)
    assert store.outbound(message) == [] and not store.heartbeat(message.id, first, lease=30)
    store.finish(message.id, first, outcome="stale")           # a no-op: not its message any more
    assert store.message(message.id).state == "processing"

    # The current holder answers; the stale one, resumed, sends nothing.
    processor = MessageProcessor(store, channel.settings, SecretaryBook(channel.engine))
    route = store.route_by_id(tenant.tenant_id, account.id)
    assert processor._run(store.message(message.id), route, second) is None
    assert processor._run(store.message(message.id), route, first) is None
    assert len(twilio.sent_to(SENDER)) == 1
    done = store.message(message.id)
    assert done.state == "done" and done.attempts == 2
