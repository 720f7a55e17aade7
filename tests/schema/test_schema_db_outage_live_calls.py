"""The database stops while calls run: calls go on from memory, their records wait in the spool,
and every record is in the database once it is back (a throwaway PostgreSQL cluster we can stop)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
import pytest
from sqlalchemy import text

from esl_controller.controller import ControllerSettings
from esl_controller.database_wiring import build_database_controller
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings
from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Press, WaitForApp
from schema.database import make_engine
from schema.demo import DEMO_DOMAIN_NAME, DEMO_DOMAIN_UUID, seed_demo

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "flows"


def _call(sim: FreeSwitchSimulator, socket_data: str, digit: str) -> Any:
    call = sim.place_call(socket_data=socket_data, domain_uuid=DEMO_DOMAIN_UUID, domain_name=DEMO_DOMAIN_NAME,
                          caller=CallerScript([WaitForApp("play_and_get_digits", timeout=3600), Press(digit)],
                                              ring_timeout=None, max_call_seconds=3600))
    call.wait(timeout=60)
    return call


@pytest.mark.slow
def test_calls_during_a_database_outage_keep_their_records(pg_cluster: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_WARM_PROVIDERS", "0")
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path / "run"))
    seed_demo(pg_cluster.url, FLOWS)
    controller, _routing, background = build_database_controller(
        pg_cluster.url, var_dir=tmp_path / "var",
        settings=ControllerSettings(session=SessionSettings(command_timeout=3, linger_seconds=5)))
    pump = background[0]
    pump.flush_every = 0.5
    server = EslServer("127.0.0.1", 0, controller, max_calls=10)
    server.start()
    socket_data = "{}:{} async full".format(*server.address)
    sim = FreeSwitchSimulator(speed=20)
    try:
        before = _call(sim, socket_data, "1")
        pg_cluster.stop()
        during = [_call(sim, socket_data, d) for d in ("1", "2")]
        assert [c.state.transferred_to[:4] for c in during] == ["1001", "1002"]   # served from memory
        gevent.sleep(1.0)
        assert pump.writer.pending() >= 1, "records of the outage wait in the spool"
        pg_cluster.start()
        wanted = {before.uuid, *(c.uuid for c in during)}
        engine = make_engine(pg_cluster.url)
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                stored = {row[0] for row in conn.execute(text("select call_uuid from call_records"))}
            if wanted <= stored or time.monotonic() > deadline:
                break
            gevent.sleep(0.3)
        engine.dispose()
        assert wanted <= stored, (wanted - stored, before.uuid, pump.writer.pending(), pump.queue.qsize())
        assert pump.writer.pending() == 0
    finally:
        server.stop(deadline=2)
        for part in background:
            part.stop()
