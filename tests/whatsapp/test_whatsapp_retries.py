"""Retries with backoff for what is retryable (Twilio 429/5xx, timeouts), the dead-letter queue and its
replay, WhatsApp's 24-hour window (template or a clear dead-letter reason), and no reply sent twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from twilio_stub import Fault, TwilioStub
from whatsapp_harness import Channel, wait_for

from scripts.cli import cli
from whatsapp.retry_policy import backoff
from whatsapp.splitting import split_message

SENDER = "whatsapp:+15557654321"
TEMPLATE = "HX" + "1" * 32


def _message(channel: Channel, tenant_id: int, state: str) -> object:
    return wait_for(lambda: [m for m in channel.store.messages(tenant_id) if m.state == state], timeout=60)[0]


@pytest.mark.models
def test_429_and_500_are_retried_with_backoff_then_the_reply_goes_out_once(channel: Channel,
                                                                          twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    channel.serve()
    channel.start_workers(2)
    twilio.fail_next(Fault(429), Fault(503))
    channel.post(account, SENDER, "How much is a cleaning?")
    message = _message(channel, tenant.tenant_id, "done")
    assert message.attempts == 3 and message.outcome == "answered"
    assert len(twilio.sent_to(SENDER)) == 1
    [part] = channel.store.outbound(message)
    assert part.state == "sent" and part.twilio_sid == twilio.sent_to(SENDER)[0].sid
    assert channel.store.dead_letters() == []


@pytest.mark.models
def test_the_last_retry_goes_to_the_dead_letter_queue_and_a_replay_sends_it(
        channel: Channel, twilio: TwilioStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_WHATSAPP_QUEUE", channel.settings.queue_url)
    monkeypatch.setenv("IVR_WHATSAPP_QUEUE_NAME", channel.settings.queue_name)
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    channel.serve()
    channel.start_workers(2)
    twilio.fail_next(*[Fault(500)] * channel.settings.max_attempts)
    channel.post(account, SENDER, "How much is a cleaning?")
    message = _message(channel, tenant.tenant_id, "dead")
    assert message.attempts == channel.settings.max_attempts and twilio.sent_to(SENDER) == []
    [dead] = channel.store.dead_letters(tenant.tenant_id)
    assert dead.error_class == "TwilioServerError" and dead.attempts == channel.settings.max_attempts
    assert "cleaning" not in dead.reason and "+1555" not in dead.reason        # no content, no number

    listed = CliRunner().invoke(cli, ["whatsapp", "dlq", "list", "dental.example", "--url", channel.url])
    assert listed.exit_code == 0, listed.output
    assert "TwilioServerError" in listed.output and f"message {message.id}" in listed.output
    replay = CliRunner().invoke(cli, ["whatsapp", "dlq", "replay", "dental.example", str(dead.id),
                                      "--url", channel.url])
    assert replay.exit_code == 0, replay.output
    wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    done = _message(channel, tenant.tenant_id, "done")
    assert done.id == message.id and done.attempts == 1 and len(twilio.sent_to(SENDER)) == 1
    assert channel.store.dead_letters(tenant.tenant_id) == []


@pytest.mark.models
def test_a_timed_out_send_that_twilio_accepted_is_found_and_not_sent_again(channel: Channel,
                                                                          twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    channel.serve()
    channel.start_workers(2)
    twilio.fail_next(Fault(delay=channel.settings.twilio_timeout + 1.0))   # accepted, answered too late
    channel.post(account, SENDER, "Where are you?")
    message = _message(channel, tenant.tenant_id, "done")
    assert message.attempts == 2 and twilio.lists >= 1
    assert len(twilio.sent_to(SENDER)) == 1
    assert channel.store.outbound(message)[0].twilio_sid == twilio.sent_to(SENDER)[0].sid


@pytest.mark.models
def test_outside_the_24_hour_window_the_template_goes_instead(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example")
    with_template = channel.account(tenant, template_content_sid=TEMPLATE)
    without = channel.account(tenant)
    channel.serve()
    channel.start_workers(2)
    twilio.fail_next(Fault(400, code=63016))
    channel.post(with_template, SENDER, "Where are you?")
    sent = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    assert sent[0].content_sid == TEMPLATE and sent[0].body == ""
    assert _message(channel, tenant.tenant_id, "done").outcome == "template_sent"

    twilio.fail_next(Fault(400, code=63016))
    channel.post(without, "whatsapp:+15550002222", "Where are you?")
    dead = wait_for(lambda: channel.store.dead_letters(tenant.tenant_id), timeout=60)[0]
    assert dead.error_class == "OutsideWindow" and "no template configured" in dead.reason
    assert dead.attempts == 1                                         # not retried: no retry can fix it


@pytest.mark.models
def test_a_63016_delivery_failure_reported_later_sends_the_template(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant, template_content_sid=TEMPLATE)
    channel.serve(public=True)
    channel.start_workers(2)
    channel.post(account, SENDER, "Where are you?")
    [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    wait_for(lambda: channel.store.counts() == {"done": 1})
    assert twilio.status_callback(reply, "undelivered", error_code="63016").status_code == 200
    sent = wait_for(lambda: len(twilio.sent_to(SENDER)) == 2 and twilio.sent_to(SENDER), timeout=60)
    assert sent[1].content_sid == TEMPLATE
    assert wait_for(lambda: [m for m in channel.store.messages(tenant.tenant_id)
                             if m.state == "done" and m.outcome == "template_sent"])


def test_long_replies_are_split_on_sentence_boundaries_under_1600_characters() -> None:
    sentence = "The clinic offers cleanings, check-ups, fillings and crowns at fair prices."
    text = " ".join([sentence] * 60)
    parts = split_message(text)
    assert len(parts) == 3 and all(len(p) <= 1600 for p in parts)
    assert all(p.endswith(".") for p in parts) and " ".join(parts) == text
    assert split_message("short") == ["short"] and split_message("  ") == []
    word = "x" * 4000
    assert [len(p) for p in split_message(word)] == [1600, 1600, 800]


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    delays = [backoff(n, base=2.0, maximum=300.0) for n in range(1, 10)]
    assert 1.6 <= delays[0] <= 2.4 and 3.2 <= delays[1] <= 4.8 and 6.4 <= delays[2] <= 9.6
    assert max(delays) <= 300.0 and delays[-1] >= 240.0
    assert backoff(1, base=2.0, maximum=300.0, retry_after=30.0) >= 30.0


def test_account_settings_are_validated(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from whatsapp.account_settings import AccountSettings

    for bad in ({"hours": {"mon-fri": "25:00-18:00"}}, {"template_content_sid": "HXnope"},
                {"handoff_url": "ftp://x"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            AccountSettings.model_validate(bad)
    import datetime as dt

    s = AccountSettings.model_validate({"hours": {"mon-fri": "08:00-18:00"}})
    monday_noon = dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.UTC)      # 12:00 in New York
    sunday = dt.datetime(2026, 12, 6, 17, 0, tzinfo=dt.UTC)
    assert s.is_open("America/New_York", monday_noon) and not s.is_open("America/New_York", sunday)
