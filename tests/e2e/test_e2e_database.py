"""The controller on a real database: tenants, pinned flow versions, live reload, call records."""

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
from e2e_controller import ROOT, TENANT_NAME, TENANT_UUID

from esl_controller.controller import ControllerSettings
from esl_controller.database_wiring import build_database_controller
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings
from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Press, WaitForApp
from schema.database import make_engine, make_session_factory
from schema.demo import seed_demo
from schema.store import TenantStore
from scripts.cli import cli

DEMO = ROOT / "examples" / "flows" / "demo.yaml"


def patient(*actions) -> CallerScript:
    """A caller who waits as long as it takes (real TTS may make the first prompt slow on a busy machine)."""
    return CallerScript(list(actions), ring_timeout=None, max_call_seconds=3600)


def press_at_menu(digit: str) -> CallerScript:
    return patient(WaitForApp("play_and_get_digits", timeout=3600), Press(digit))


def demo_v2(tmp_path: Path) -> Path:
    v2 = tmp_path / "demo-v2.yaml"
    v2.write_text(DEMO.read_text().replace('to: "1001"', 'to: "1009"'))
    return v2


class DbController:
    def __init__(self, tmp_path: Path, url: str) -> None:
        seed_demo(url, ROOT / "examples" / "flows")
        settings = ControllerSettings(session=SessionSettings(command_timeout=3, linger_seconds=5))
        self.controller, self.routing, self.background = build_database_controller(
            url, settings=settings, var_dir=tmp_path / "var")
        self.server = EslServer("127.0.0.1", 0, self.controller, max_calls=20)
        self.server.start()
        self.url = url

    @property
    def socket_data(self) -> str:
        host, port = self.server.address
        return f"{host}:{port} async full"

    def stop(self) -> None:
        self.server.stop(deadline=2)
        for part in self.background:
            part.stop()


@pytest.fixture()
def sqlite_env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    monkeypatch.setenv("IVR_DATABASE_URL", url)
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("IVR_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("IVR_WARM_PROVIDERS", "0")   # no background model loading while tests run
    monkeypatch.chdir(tmp_path)
    c = DbController(tmp_path, url)
    yield c
    c.stop()


def _records(url: str) -> dict[str, dict]:
    sessions = make_session_factory(make_engine(url))
    store = TenantStore.open(sessions, TENANT_UUID)
    return {r.call_uuid: r for r in store.call_records(limit=1000)}


def _wait_for_records(url: str, uuids: set[str], timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _records(url)
        if uuids <= set(records):
            return records
        gevent.sleep(0.1)
    raise AssertionError(f"call records missing: {uuids - set(_records(url))}")


def test_a_call_keeps_its_flow_version_while_a_new_one_is_published(sqlite_env, tmp_path):
    c = sqlite_env
    sim = FreeSwitchSimulator(speed=5)
    first = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                           caller=patient())
    deadline = time.monotonic() + 20
    while not any("play_and_get_digits" in cmd for cmd in first.commands()):
        assert time.monotonic() < deadline
        gevent.sleep(0.01)
    published = CliRunner().invoke(cli, ["flows", "publish", TENANT_NAME, str(demo_v2(tmp_path))],
                                   catch_exceptions=False)
    assert published.exit_code == 0, published.output
    assert "demo-main v2 published" in published.output and "reloaded" in published.output
    first.press("1")
    first.wait(timeout=30)
    assert first.state.transferred_to.startswith("1001"), "the running call must keep version 1"

    second = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                            caller=press_at_menu("1"))
    second.wait(timeout=30)
    assert second.state.transferred_to.startswith("1009"), "a new call takes the published version 2"

    rollback = CliRunner().invoke(cli, ["flows", "rollback", TENANT_NAME, "demo-main"], catch_exceptions=False)
    assert rollback.exit_code == 0 and "reloaded" in rollback.output
    third = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                           caller=press_at_menu("1"))
    third.wait(timeout=30)
    assert third.state.transferred_to.startswith("1001")

    records = _wait_for_records(c.url, {first.uuid, second.uuid, third.uuid})
    versions = {records[call.uuid].flow_version_id for call in (first, second, third)}
    assert len(versions) == 2
    assert records[first.uuid].flow_version_id == records[third.uuid].flow_version_id
    assert [step["node"] for step in records[second.uuid].path] == ["welcome", "menu", "sales"]


def test_a_reload_that_fails_validation_keeps_the_running_flow(sqlite_env):
    c = sqlite_env
    sessions = make_session_factory(make_engine(c.url))
    store = TenantStore.open(sessions, TENANT_UUID)
    # A version that bypassed `ivr flows publish` (hand-edited database): the reload must refuse it.
    store.add_version("demo-main", DEMO.read_text().replace("type: menu", "type: menuu"), author="test")
    result = CliRunner().invoke(cli, ["tenants", "reload", TENANT_NAME])
    assert result.exit_code != 0
    assert "menuu" in result.output and "did you mean 'menu'" in result.output
    sim = FreeSwitchSimulator(speed=40)
    call = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                          caller=press_at_menu("2"))
    call.wait(timeout=30)
    assert call.state.transferred_to.startswith("1002")


def test_an_unknown_tenant_reaches_the_fallback_and_abandoned_calls_are_recorded(sqlite_env):
    c = sqlite_env
    sim = FreeSwitchSimulator(speed=40)
    stranger = sim.place_call(socket_data=c.socket_data, domain_uuid="99999999-9999-4999-8999-999999999999",
                              domain_name="nobody.example", caller=patient())
    stranger.wait(timeout=30)
    assert stranger.state.transferred_to.startswith("ivr_fallback")
    abandoned = sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                               caller=patient(WaitForApp("speak", timeout=3600)))
    gevent.sleep(0.05)
    abandoned.hangup()
    abandoned.wait(timeout=30)
    records = _wait_for_records(c.url, {abandoned.uuid})
    assert records[abandoned.uuid].outcome == "caller_hangup"
    assert stranger.uuid not in _records(c.url)   # another tenant's call is never stored under this one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.postgres
@pytest.mark.slow
def test_publish_reaches_two_controller_processes_through_notify(pg_url, tmp_path):
    seed_demo(pg_url, ROOT / "examples" / "flows")
    env = {**os.environ, "IVR_DATABASE_URL": pg_url, "IVR_VAR_DIR": str(tmp_path / "var"), "IVR_WARM_PROVIDERS": "0"}
    ports = [_free_port(), _free_port()]
    procs = [subprocess.Popen([sys.executable, "-m", "scripts.cli", "serve", "--port", str(p)],
                              cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for p in ports]
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "controller did not start"
                    gevent.sleep(0.2)
        gevent.sleep(1.0)   # LISTEN is issued right after start
        result = CliRunner().invoke(cli, ["flows", "publish", TENANT_NAME, str(demo_v2(tmp_path)), "--url", pg_url],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.output.count(": reloaded") == 2, result.output
        sim = FreeSwitchSimulator(speed=40)
        for port in ports:
            call = sim.place_call(socket_data=f"127.0.0.1:{port} async full", domain_uuid=TENANT_UUID,
                                  domain_name=TENANT_NAME,
                                  caller=press_at_menu("1"))
            call.wait(timeout=30)
            assert call.state.transferred_to.startswith("1009"), port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=40)
