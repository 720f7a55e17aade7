"""The webhook: real `RequestValidator` signatures (valid, tampered, extra field, behind a proxy with and
without trust, wrong account), unknown accounts, duplicates, rate limits, and an answer that never
waits for a model."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import requests
from twilio_stub import TwilioStub, inbound_fields
from whatsapp_harness import Channel

SENDER = "whatsapp:+15557654321"


def _stored(channel: Channel) -> int:
    return sum(channel.store.counts().values())


def test_a_signed_message_is_stored_queued_and_acknowledged_with_empty_twiml(channel: Channel) -> None:
    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    channel.serve()
    response = channel.post(account, SENDER, "when are you open?")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert response.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    # No worker runs: the acknowledgement did not wait for an answer; the message waits in the queue.
    assert channel.store.counts() == {"queued": 1}
    assert channel.queue.pending() == 1
    [message] = channel.store.messages(tenant.tenant_id)
    assert message.body == "when are you open?" and message.contact == SENDER and len(message.correlation_id) == 32


def test_tampered_and_extra_fields_and_wrong_accounts_fail_closed(channel: Channel) -> None:
    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    other = channel.account(channel.tenant("other.example", docs=()))
    channel.serve()
    url = f"{channel.base_url}/twilio/whatsapp"
    fields = inbound_fields(account.sid, account.number, SENDER, "hello")
    headers = TwilioStub.signed_form(url, fields, account.token)

    tampered = {**fields, "Body": "hello, and send me everything"}
    extra = {**fields, "Injected": "1"}
    for form, sig in ((tampered, headers), (extra, headers),
                      (fields, TwilioStub.signed_form(url, fields, other.token)),     # signed by another account
                      (fields, {})):                                                     # no signature
        response = requests.post(url, data=form, headers=sig, timeout=10)
        assert response.status_code == 403 and response.content == b""
    assert _stored(channel) == 0
    assert requests.post(url, data=fields, headers=headers, timeout=10).status_code == 200
    assert _stored(channel) == 1


def test_an_unknown_account_or_number_gets_200_and_nothing_is_done(channel: Channel) -> None:
    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    channel.serve()
    url = f"{channel.base_url}/twilio/whatsapp"
    for sid, to in (("AC" + "0" * 32, account.number), (account.sid, "whatsapp:+15550009999")):
        fields = inbound_fields(sid, to, SENDER, "hello")
        response = requests.post(url, data=fields, headers=TwilioStub.signed_form(url, fields, account.token),
                                 timeout=10)
        assert response.status_code == 200 and "<Response/>" in response.text
    assert _stored(channel) == 0 and channel.queue.pending() == 0


def test_behind_a_proxy_the_public_url_or_trusted_forwarded_headers_are_what_twilio_signed(
        channel: Channel) -> None:
    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    public = "https://ivr.clinic.example/twilio/whatsapp"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.clinic.example"}

    # No public URL, the proxy not trusted: forwarded headers are ignored, the public signature fails.
    channel.serve()
    assert channel.post(account, SENDER, "hi", signed_url=public, headers=forwarded).status_code == 403
    channel.server.stop(timeout=2)

    # The proxy (here: loopback) trusted: its forwarded headers name the signed URL.
    channel.runtime.settings = replace(channel.settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    channel.serve()
    assert channel.post(account, SENDER, "hi", signed_url=public, headers=forwarded).status_code == 200
    assert channel.post(account, SENDER, "hi", signed_url=public).status_code == 403   # no headers: local URL
    channel.server.stop(timeout=2)

    # A configured public base URL wins over any header.
    channel.runtime.settings = replace(channel.settings, public_base_url="https://ivr.clinic.example")
    channel.serve()
    spoofed = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    assert channel.post(account, SENDER, "hi", signed_url=public, headers=spoofed).status_code == 200
    assert channel.post(account, SENDER, "hi").status_code == 403      # signed for the local URL: refused
    assert _stored(channel) == 2


def test_unsigned_requests_pass_only_with_the_development_flag_and_only_from_loopback(channel: Channel) -> None:
    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    channel.serve(allow_unsigned=True)
    fields = inbound_fields(account.sid, account.number, SENDER, "hi")
    assert requests.post(f"{channel.base_url}/twilio/whatsapp", data=fields, timeout=10).status_code == 200

    from click.testing import CliRunner

    from scripts.cli import cli

    result = CliRunner().invoke(cli, ["web", "--host", "0.0.0.0", "--allow-unsigned"])
    assert result.exit_code != 0 and "only works when --host is a loopback address" in result.output


def test_a_retried_delivery_is_acknowledged_and_not_queued_twice(channel: Channel) -> None:
    import gevent

    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    channel.serve()
    sid = "SM" + "a" * 32
    jobs = [gevent.spawn(channel.post, account, SENDER, "hello", message_sid=sid) for _ in range(5)]
    gevent.joinall(jobs, timeout=20)
    assert [j.value.status_code for j in jobs] == [200] * 5
    assert channel.store.counts() == {"queued": 1} and channel.queue.pending() == 1


def test_a_flooding_sender_is_refused_politely_once_per_window(channel: Channel) -> None:
    channel.runtime.settings = replace(channel.settings, sender_rate="3/minute")
    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    channel.serve()
    answers = [channel.post(account, SENDER, f"message {i}").text for i in range(6)]
    assert all("<Response/>" in a for a in answers[:3])
    assert "faster than I can answer" in answers[3]          # the first refusal says so
    assert all("<Response/>" in a for a in answers[4:])       # the next ones do not
    assert channel.store.counts() == {"queued": 3}
    # Another sender of the same tenant is not limited by the first one.
    assert "<Response/>" in channel.post(account, "whatsapp:+15550001111", "hi").text


def test_errors_never_leak_exception_text(channel: Channel) -> None:
    import socket

    channel.serve()
    # Accepted connections inherit TCP_NODELAY: no ~40 ms Nagle stall per kept-alive response.
    assert channel.server.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    response = requests.post(f"{channel.base_url}/twilio/whatsapp", data=b"x" * (70 * 1024),
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert response.status_code == 413 and response.content == b""
    assert requests.get(f"{channel.base_url}/nowhere", timeout=10).content == b""
    health = requests.get(f"{channel.base_url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json() == {"ok": True}
    metrics = requests.get(f"{channel.base_url}/metrics", timeout=10)
    assert "ivr_whatsapp_webhook_seconds" in metrics.text


def test_a_webhook_write_waits_for_a_locked_sqlite_file_without_stopping_the_process(channel: Channel) -> None:
    import sqlite3

    import gevent

    from schema.database import make_session_factory
    from whatsapp.runtime import channel_engine
    from whatsapp.store import WhatsAppStore

    tenant = channel.tenant("clinic.example", docs=())
    account = channel.account(tenant)
    web_store = WhatsAppStore(make_session_factory(channel_engine(channel.url, busy_timeout=0.0)), yield_on_lock=True)
    info = web_store.account(tenant.tenant_id, account.id)
    other = sqlite3.connect(str(channel.tmp / "ivr.db"), isolation_level=None)   # "a worker" holding the lock
    other.execute("BEGIN IMMEDIATE")
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(30)])
    writer = gevent.spawn(web_store.store_inbound, info, message_sid="SM" + "c" * 32, contact=SENDER, body="hi",
                          media=[], correlation_id="c" * 32)
    gevent.sleep(0.25)
    assert not writer.ready() and len(ticks) >= 10        # waiting, and the rest of the process runs meanwhile
    other.execute("COMMIT")
    message_id, created = writer.get(timeout=5)
    assert created and channel.store.message(message_id).body == "hi"
    ticker.join(timeout=5)
    other.close()
