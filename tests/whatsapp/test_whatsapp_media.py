"""Voice notes and media: an OGG/Opus note made with PyAV from piper speech, downloaded from the loopback
Twilio with the account's basic auth, through a cross-host redirect to the CDN without the credentials,
decoded, transcribed by the tenant's STT (pocketsphinx) and answered from its documents; other media
get the polite reply; URLs that are not Twilio's are never fetched."""

from __future__ import annotations

import pytest
from twilio_stub import TwilioStub
from whatsapp_harness import Channel, ogg_opus, wait_for

SENDER = "whatsapp:+15557654321"
pytestmark = pytest.mark.models


def test_a_voice_note_is_transcribed_and_answered_from_the_documents(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    note = ogg_opus("When are you open on Saturday?")
    assert note[:4] == b"OggS"
    media_url = twilio.add_media(account.sid, note, "audio/ogg")
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "", media=[(media_url, "audio/ogg")])
    [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=90)
    assert "Saturdays we are open from 9 am to 1 pm" in reply.body

    api, cdn = twilio.media_requests
    assert api.host == "api" and api.authorization is not None and api.authorization.startswith("Basic ")
    assert cdn.host == "cdn" and cdn.authorization is None          # the credentials stay with Twilio's API
    [message] = channel.store.messages(tenant.tenant_id)
    conversation = channel.store.conversation(tenant.tenant_id, message.conversation_id)
    said = conversation.history[0]
    assert said.kind == "voice" and "saturday" in said.text.lower()


def test_images_and_documents_get_the_polite_reply(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example", docs=())
    account = channel.account(tenant)
    image = twilio.add_media(account.sid, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "", media=[(image, "image/png")])
    [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    assert reply.body == "Sorry, I can only read text and voice messages."
    assert twilio.media_requests == []                 # an image is not even downloaded


def test_an_undecodable_voice_note_asks_the_contact_to_write(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example", docs=())
    account = channel.account(tenant)
    junk = twilio.add_media(account.sid, b"OggS" + b"\x13" * 4000, "audio/ogg")
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "", media=[(junk, "audio/ogg")])
    [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    assert "could not understand that voice message" in reply.body
    assert [m.outcome for m in channel.store.messages(tenant.tenant_id)] == ["voice_unreadable"]


def test_a_media_url_that_is_not_twilios_is_never_fetched(channel: Channel, twilio: TwilioStub) -> None:
    tenant = channel.tenant("dental.example", docs=())
    account = channel.account(tenant)
    other_account = twilio.add_account("someone-else")
    elsewhere = [f"{twilio.cdn_url}/v1/media/ME1",                                   # not the API host
                 twilio.add_media(other_account, ogg_opus("hello"), "audio/ogg")]     # another account's path
    channel.serve()
    channel.start_workers(2)
    for i, url in enumerate(elsewhere):
        channel.post(account, f"whatsapp:+1555000777{i}", "", media=[(url, "audio/ogg")])
    letters = wait_for(lambda: len(channel.store.dead_letters(tenant.tenant_id)) == 2
                       and channel.store.dead_letters(tenant.tenant_id), timeout=60)
    assert {d.error_class for d in letters} == {"MediaRefused"}
    assert twilio.media_requests == [] and twilio.sent == []


def test_media_over_16_mb_is_refused_while_downloading(channel: Channel, twilio: TwilioStub) -> None:
    from dataclasses import replace

    channel.runtime.settings = replace(channel.settings, max_media_bytes=64 * 1024)   # the 16 MB rule, smaller
    tenant = channel.tenant("dental.example", docs=())
    account = channel.account(tenant)
    big = twilio.add_media(account.sid, b"OggS" + b"\0" * (200 * 1024), "audio/ogg")
    channel.serve()
    channel.start_workers(2)
    channel.post(account, SENDER, "", media=[(big, "audio/ogg")])
    [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=60)
    assert "could not understand that voice message" in reply.body
