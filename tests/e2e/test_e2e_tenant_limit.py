"""A tenant at its concurrent-call limit: the extra caller hears the announcement and gets busy."""

from __future__ import annotations

import gevent
from e2e_controller import ROOT, TENANT_NAME, TENANT_UUID
from test_e2e_database import DbController

from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Hangup, Press, Wait, WaitForApp
from schema.database import make_engine, make_session_factory
from schema.demo import seed_demo
from schema.tenants import update_tenant


def test_second_call_over_the_limit_is_announced_and_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_WARM_PROVIDERS", "0")
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    seed_demo(url, ROOT / "examples" / "flows")
    update_tenant(make_session_factory(make_engine(url)), TENANT_UUID, max_concurrent_calls=1,
                  over_limit_action="announce",
                  settings={"over_limit_prompt": "All our lines are busy.", "over_limit_hangup_cause": "USER_BUSY"})
    c = DbController(tmp_path, url)
    try:
        sim = FreeSwitchSimulator(speed=20)
        first = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                               caller=CallerScript([WaitForApp("play_and_get_digits", timeout=3600), Wait(20),
                                                    Hangup()], ring_timeout=None, max_call_seconds=3600))
        deadline = gevent.Timeout(30)
        deadline.start()
        while not any("play_and_get_digits" in cmd for cmd in first.commands()):
            gevent.sleep(0.01)
        deadline.cancel()
        second = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                                caller=CallerScript([], ring_timeout=None, max_call_seconds=3600))
        outcome = second.wait(timeout=30)
        assert outcome.kind == "controller_hangup" and outcome.cause == "USER_BUSY", outcome
        assert "All our lines are busy." in " ".join(second.state.heard_what) or any(
            h.endswith(".wav") for h in second.state.heard_what)
        first.wait(timeout=30)
        assert c.server.calls.join(timeout=10)     # the controller has released the first call's slot
        third = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                               caller=CallerScript([WaitForApp("play_and_get_digits", timeout=3600), Press("2")],
                                                   ring_timeout=None, max_call_seconds=3600))
        third.wait(timeout=30)
        assert (third.state.transferred_to or "").startswith("1002"), third.outcome
    finally:
        c.stop()
