"""``ivr tenants route`` is checked and reaches running controllers, like ``ivr flows publish``.

Findings: ``route`` accepted a number another tenant owns and a flow that does not exist, and a
running controller kept sending the new number to the fallback as unknown until a manual
``ivr tenants reload`` (issue 10, item 7).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest
from click.testing import CliRunner
from e2e_controller import ROOT, TENANT_NAME

from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Press, WaitForApp
from schema.database import make_engine, make_session_factory
from schema.demo import seed_demo
from schema.tenants import add_tenant
from scripts.cli import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    monkeypatch.setenv("IVR_DATABASE_URL", url)
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("IVR_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("IVR_WARM_PROVIDERS", "0")
    seed_demo(url, ROOT / "examples" / "flows")
    add_tenant(make_session_factory(make_engine(url)), "other.example")
    return url


def test_route_refuses_a_missing_flow_and_another_tenants_number(db: str) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["tenants", "route", TENANT_NAME, "5005", "demo-mian", "--no-reload"])
    assert missing.exit_code == 1 and "no flow named 'demo-mian'" in missing.output
    assert "did you mean 'demo-main'" in missing.output
    published = runner.invoke(cli, ["flows", "publish", "other.example", str(ROOT / "examples/flows/demo.yaml"),
                                    "--no-reload"])
    assert published.exit_code == 0, published.output
    taken = runner.invoke(cli, ["tenants", "route", "other.example", "5000", "demo-main", "--no-reload"])
    assert taken.exit_code == 1 and "already routed by tenant-a.example" in taken.output
    shared = runner.invoke(cli, ["tenants", "route", "other.example", "5000", "demo-main", "--shared",
                                 "--no-reload"])
    assert shared.exit_code == 0, shared.output


def test_route_reaches_a_running_controller_process(db: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "scripts.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "controller did not start"
                gevent.sleep(0.2)
        while not list((tmp_path / "run").glob("ivr-*.sock")):
            assert time.monotonic() < deadline, "no control socket"
            gevent.sleep(0.1)
        sim = FreeSwitchSimulator(speed=40)
        script = CallerScript([WaitForApp("play_and_get_digits", timeout=3600), Press("1")], ring_timeout=None,
                              max_call_seconds=600)
        before = sim.place_call(socket_data=f"127.0.0.1:{port} async full", destination="5005", caller=script)
        before.wait(timeout=60)
        assert before.state.transferred_to.startswith("ivr_fallback"), "5005 is not routed yet"
        routed = CliRunner().invoke(cli, ["tenants", "route", TENANT_NAME, "5005", "demo-main"])
        assert routed.exit_code == 0, routed.output
        assert ": reloaded" in routed.output, routed.output
        after = sim.place_call(socket_data=f"127.0.0.1:{port} async full", destination="5005",
                               caller=CallerScript([WaitForApp("play_and_get_digits", timeout=3600), Press("1")],
                                                   ring_timeout=None, max_call_seconds=600))
        after.wait(timeout=60)
        assert after.state.transferred_to.startswith("1001"), after.commands()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
