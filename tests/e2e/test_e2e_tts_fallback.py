"""A tenant whose first TTS times out: the second answers, the caller hears the prompt, the record shows it."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet
from e2e_controller import ROOT, TENANT_NAME, TENANT_UUID
from test_e2e_database import DbController, _wait_for_records

from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Press, WaitForApp
from schema.database import make_engine, make_session_factory
from schema.demo import seed_demo
from schema.store import TenantStore


class _Hangs(BaseHTTPRequestHandler):
    def do_POST(self):
        time.sleep(10)

    def log_message(self, *args):
        pass


@pytest.mark.models
def test_first_tts_times_out_second_answers_and_the_record_shows_the_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_SECRET_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("IVR_WARM_PROVIDERS", "0")
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Hangs)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    seed_demo(url, ROOT / "examples" / "flows")
    store = TenantStore.open(make_session_factory(make_engine(url)), TENANT_UUID)
    store.set_provider("tts", "openai", position=0,
                       settings={"base_url": f"http://127.0.0.1:{http.server_address[1]}/v1", "timeout": 0.5,
                                 "retries": 0},
                       secrets={"api_key": "sk-test"})
    store.set_provider("tts", "piper", position=1)
    store.set_provider("tts", "flite", position=2)
    c = DbController(tmp_path, url)
    try:
        sim = FreeSwitchSimulator(speed=20)
        call = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                              caller=CallerScript([WaitForApp("play_and_get_digits", timeout=3600), Press("1")],
                                                  ring_timeout=None, max_call_seconds=3600))
        call.wait(timeout=60)
        assert call.state.transferred_to.startswith("1001"), call.state.notes
        heard = call.state.heard_what
        assert heard and heard[0].endswith(".wav"), heard       # a synthesized file, not flite speak
        assert heard[0].startswith("/"), "FreeSWITCH needs an absolute path"
        record = _wait_for_records(url, {call.uuid})[call.uuid]
        tts = [u for u in record.latencies["providers"] if u["kind"] == "tts"]
        assert tts[0]["provider"].startswith("tts:piper")
        assert tts[0]["fallback"][0]["provider"].startswith("tts:openai")
        assert tts[0]["fallback"][0]["error"] == "ProviderTimeout"
    finally:
        c.stop()
        http.shutdown()
