"""``ivr whatsapp add|list|show|update|remove``: accounts with their auth token encrypted and never shown;
the channel's settings from the environment."""

from __future__ import annotations

import ipaddress
import json

import pytest
from click.testing import CliRunner
from whatsapp_harness import Channel

from schema.models import WhatsAppAccount
from scripts.cli import cli
from whatsapp.errors import ConfigError
from whatsapp.settings import ChannelSettings

SID = "AC" + "ab" * 16
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"


def run(*args: str, input: str | None = None) -> object:
    return CliRunner().invoke(cli, list(args), input=input)


def test_accounts_from_the_command_line(channel: Channel) -> None:
    channel.tenant("dental.example", docs=())
    url = ["--url", channel.url]
    added = run("whatsapp", "add", "dental.example", "--account-sid", SID, "--from", "whatsapp:+15551230000",
                "--handoff-url", "https://crm.example/handoff", "--set", 'hours={"mon-fri": "08:00-18:00"}', *url,
                input=f"{TOKEN}\n{TOKEN}\n")
    assert added.exit_code == 0, added.output
    assert TOKEN not in added.output and "handoff secret (shown once" in added.output
    # Stored encrypted: the token is nowhere in the row.
    with channel.sessions() as s:
        row = s.query(WhatsAppAccount).one()
        assert TOKEN not in row.secrets_encrypted and row.settings["hours"] == {"mon-fri": "08:00-18:00"}
    route = channel.store.route(SID, "whatsapp:+15551230000")
    assert route is not None and route.auth_token.reveal() == TOKEN and TOKEN not in repr(route)

    listed = run("whatsapp", "list", *url)
    assert listed.exit_code == 0 and SID in listed.output and "handoff=yes" in listed.output
    shown = run("whatsapp", "show", "dental.example", str(route.account.id), *url)
    assert shown.exit_code == 0 and TOKEN not in shown.output and '"mon-fri": "08:00-18:00"' in shown.output
    updated = run("whatsapp", "update", "dental.example", str(route.account.id), "--set", "idle_minutes=5",
                  "--unset", "hours", *url)
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output) == {"handoff_url": "https://crm.example/handoff", "idle_minutes": 5}
    bad = run("whatsapp", "update", "dental.example", str(route.account.id), "--set", "idle_minutez=5", *url)
    assert bad.exit_code != 0 and "idle_minutez" in bad.output
    duplicate = run("whatsapp", "add", "dental.example", "--account-sid", SID, "--from", "whatsapp:+15551230000",
                    "--auth-token", TOKEN, *url)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    assert run("whatsapp", "add", "dental.example", "--account-sid", "XX1", "--from", "whatsapp:+1555",
               "--auth-token", TOKEN, *url).exit_code != 0
    removed = run("whatsapp", "remove", "dental.example", str(route.account.id), *url)
    assert removed.exit_code == 0 and channel.store.accounts() == []


def test_channel_settings_come_from_the_environment() -> None:
    defaults = ChannelSettings.from_env({})
    assert defaults == ChannelSettings()
    assert defaults.queue_url == "sqlite:///var/whatsapp-queue.db" and defaults.max_attempts == 6
    s = ChannelSettings.from_env({"IVR_WHATSAPP_PUBLIC_URL": "https://ivr.example.com/",
                                  "IVR_WHATSAPP_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
                                  "IVR_WHATSAPP_QUEUE": "redis://127.0.0.1:6379/3", "IVR_WHATSAPP_MAX_ATTEMPTS": "3",
                                  "IVR_TWILIO_API_BASE": "http://127.0.0.1:9/"})
    assert s.public_base_url == "https://ivr.example.com" and s.max_attempts == 3
    assert ipaddress.ip_address("10.1.2.3") in s.trusted_proxies[0] and s.api_host == "127.0.0.1:9"
    assert s.status_callback("abc") == "https://ivr.example.com/twilio/status?cid=abc"
    for bad in ({"IVR_WHATSAPP_TRUSTED_PROXIES": "not-an-ip"}, {"IVR_WHATSAPP_MAX_ATTEMPTS": "x"},
                {"IVR_WHATSAPP_PUBLIC_URL": "ivr.example.com"}):
        with pytest.raises(ConfigError):
            ChannelSettings.from_env(bad)
