"""A worker process killed mid-task (SIGKILL, a real process) loses no message and sends no duplicate reply:
another worker takes the message over when the lease lapses, and a reply the dead worker had already
handed to Twilio is found there instead of being sent again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from providers_stub_server import Reply, StubServer
from test_rag_node import openai_text
from twilio_stub import Fault, TwilioStub
from whatsapp_harness import ROOT, Channel, wait_for

SENDER = "whatsapp:+15557654321"
pytestmark = [pytest.mark.models, pytest.mark.slow]


def start_worker(channel: Channel, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IVR_WHATSAPP_QUEUE": channel.settings.queue_url,
           "IVR_WHATSAPP_QUEUE_NAME": channel.settings.queue_name, "IVR_TWILIO_API_BASE": channel.twilio.api_url,
           "IVR_TWILIO_MEDIA_HOSTS": "localhost", "IVR_WHATSAPP_LEASE": "2", "IVR_WHATSAPP_SWEEP": "0.5",
           "IVR_WHATSAPP_REQUEUE_AFTER": "1", "IVR_WHATSAPP_BACKOFF": "0.05", "IVR_WARM_PROVIDERS": "0",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "scripts.cli", "whatsapp", "worker", "--workers", "2",
                             "--url", channel.url], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def test_a_worker_killed_while_the_model_answers_loses_no_message(
        channel: Channel, twilio: TwilioStub, tmp_path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    llm = StubServer()
    try:
        slow = openai_text("We are open on Saturdays from 9 am to 1 pm.")
        llm.script("POST", "/v1/chat/completions", Reply(sse=slow.sse, delay=30.0), slow)
        tenant = channel.tenant("dental.example", llm=[("openai_compatible", {"base_url": f"{llm.url}/v1",
                                                                              "model": "m", "retries": 0,
                                                                              "timeout": 60}, {})])
        account = channel.account(tenant)
        channel.serve()
        first = start_worker(channel, tmp_path, "first")
        workers.append(first)
        assert channel.post(account, SENDER, "When are you open on Saturday?").status_code == 200
        wait_for(lambda: llm.calls("/v1/chat/completions"), timeout=90)       # the first worker is mid-answer
        first.kill()                                                          # SIGKILL: no goodbye
        first.wait(timeout=10)
        assert channel.store.counts() == {"processing": 1} and twilio.sent == []

        workers.append(start_worker(channel, tmp_path, "second"))
        [reply] = wait_for(lambda: twilio.sent_to(SENDER), timeout=90)
        assert reply.body == "We are open on Saturdays from 9 am to 1 pm."
        wait_for(lambda: channel.store.counts() == {"done": 1}, timeout=30)
        time.sleep(1.5)
        assert len(twilio.sent_to(SENDER)) == 1
        [message] = channel.store.messages(tenant.tenant_id)
        assert message.attempts == 2 and len(llm.calls("/v1/chat/completions")) == 2
        # The workers' logs follow the message by its correlation id, never by number or words.
        logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
        assert message.correlation_id in logs and "whatsapp.message_done" in logs
        assert "5557654321" not in logs and "open on Saturday" not in logs and "9 am to 1 pm" not in logs
    finally:
        llm.close()


def test_a_worker_killed_while_twilio_takes_the_reply_sends_it_once(
        channel: Channel, twilio: TwilioStub, tmp_path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    tenant = channel.tenant("dental.example")
    account = channel.account(tenant)
    channel.serve()
    twilio.fail_next(Fault(delay=30.0))       # Twilio accepts the reply, then takes its time to answer
    first = start_worker(channel, tmp_path, "first")
    workers.append(first)
    channel.post(account, SENDER, "How much is a cleaning?")
    wait_for(lambda: twilio.sent_to(SENDER), timeout=90)    # accepted at Twilio; the worker awaits the answer
    first.kill()
    first.wait(timeout=10)
    [message] = channel.store.messages(tenant.tenant_id)
    assert message.state == "processing" and channel.store.outbound(message)[0].state == "sending"

    workers.append(start_worker(channel, tmp_path, "second"))
    wait_for(lambda: channel.store.counts() == {"done": 1}, timeout=90)
    time.sleep(1.5)
    assert len(twilio.sent_to(SENDER)) == 1 and twilio.lists >= 1      # looked up, not sent again
    [part] = channel.store.outbound(channel.store.messages(tenant.tenant_id)[0])
    assert part.state == "sent" and part.twilio_sid == twilio.sent_to(SENDER)[0].sid
