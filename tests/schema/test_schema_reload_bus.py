"""The reload bus reaches every running controller and brings back each one's answer: two listener
processes on the SQLite control sockets, and two on PostgreSQL LISTEN/NOTIFY; a failing callback's
error text reaches the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from schema.database import make_engine, make_session_factory
from schema.migrate import upgrade
from schema.reload_bus import publish_reload
from schema.tenants import add_tenant
from scripts.tenants_commands import tenants

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FAILURE_TEXT = "node 'menu': unknown target 'nowhere'"


class Listeners:
    def __init__(self, url: str, run_dir: str, work: Path) -> None:
        self.url, self.run_dir, self.work = url, run_dir, work
        self.procs: list[subprocess.Popen[str]] = []
        self.outputs: list[Path] = []

    def start(self, mode: str) -> subprocess.Popen[str]:
        out = self.work / f"calls-{len(self.procs)}.jsonl"
        env = os.environ | {"PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, str(HERE / "schema_reload_listener_proc.py"), self.url,
                                 self.run_dir, mode, str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                text=True)
        self.procs.append(proc)
        self.outputs.append(out)
        assert proc.stdout is not None
        seen = []
        with gevent.Timeout(30):
            while (line := proc.stdout.readline()) and line.strip() != "ready":
                seen.append(line)  # structlog's console lines come first
        assert line.strip() == "ready", f"listener did not start: {seen!r}"
        return proc

    def tenants_heard(self) -> list[list[str | None]]:
        return [[json.loads(x)["tenant"] for x in o.read_text().splitlines()] if o.exists() else []
                for o in self.outputs]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ivr-run-")  # short: Unix socket paths are limited to ~100 bytes
    yield path
    for f in Path(path).iterdir():
        f.unlink()
    os.rmdir(path)


def _listeners(url: str, run_dir: str, work: Path) -> Iterator[Listeners]:
    group = Listeners(url, run_dir, work)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def sqlite_listeners(sqlite_url: str, run_dir: str, tmp_path: Path) -> Iterator[Listeners]:
    yield from _listeners(sqlite_url, run_dir, tmp_path)


def test_sqlite_two_controllers_answer_through_their_control_sockets(
        sqlite_url: str, sessions: sessionmaker[Session], run_dir: str, sqlite_listeners: Listeners) -> None:
    tenant = add_tenant(sessions, "a.example")
    ok_proc = sqlite_listeners.start("ok")
    fail_proc = sqlite_listeners.start("fail")
    assert sorted(p.name for p in Path(run_dir).iterdir()) == sorted(
        [f"ivr-{ok_proc.pid}.sock", f"ivr-{fail_proc.pid}.sock"])
    assert all((Path(run_dir) / f"ivr-{p.pid}.sock").stat().st_mode & 0o077 == 0 for p in (ok_proc, fail_proc))

    replies = {r.controller.rsplit(":", 1)[1]: r for r in publish_reload(sqlite_url, None, run_dir=run_dir)}
    assert set(replies) == {str(ok_proc.pid), str(fail_proc.pid)}
    assert replies[str(ok_proc.pid)].ok and replies[str(ok_proc.pid)].message == "ok"
    assert not replies[str(fail_proc.pid)].ok and FAILURE_TEXT in replies[str(fail_proc.pid)].message

    result = CliRunner().invoke(tenants, ["reload", "a.example", "--url", sqlite_url, "--run-dir", run_dir])
    assert result.exit_code == 1
    assert f":{ok_proc.pid}: ok" in result.output
    assert f":{fail_proc.pid}: ERROR: " in result.output and FAILURE_TEXT in result.output
    assert "1 of 2 controller(s) kept their old configuration" in result.output
    assert sqlite_listeners.tenants_heard() == [[None, tenant.domain_uuid], [None, tenant.domain_uuid]]

    # a controller that died without cleaning up leaves a stale socket: it is removed, the live one answers
    fail_proc.send_signal(signal.SIGKILL)
    fail_proc.wait(timeout=10)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.path.join(run_dir, "ivr-999999.sock"))
    stale.close()
    replies_after = publish_reload(sqlite_url, None, run_dir=run_dir)
    assert [r.controller.rsplit(":", 1)[1] for r in replies_after] == [str(ok_proc.pid)]
    assert sorted(p.name for p in Path(run_dir).iterdir()) == [f"ivr-{ok_proc.pid}.sock"]
    result = CliRunner().invoke(tenants, ["reload", "--url", sqlite_url, "--run-dir", run_dir])
    assert result.exit_code == 0 and result.output.strip().endswith(": ok")


def test_reload_with_no_controller_running(sqlite_url: str, run_dir: str) -> None:
    assert publish_reload(sqlite_url, None, run_dir=run_dir) == []
    result = CliRunner().invoke(tenants, ["reload", "--url", sqlite_url, "--run-dir", run_dir])
    assert result.exit_code == 0 and "no running controller" in result.output
    result = CliRunner().invoke(tenants, ["reload", "nobody.example", "--url", sqlite_url, "--run-dir", run_dir])
    assert result.exit_code == 1 and "unknown tenant" in result.output


@pytest.mark.postgres
def test_postgres_two_controllers_hear_one_notify(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    engine.dispose()
    for group in _listeners(pg_url, "", tmp_path):
        first, second = group.start("ok"), group.start("fail")
        replies = {r.controller.rsplit(":", 1)[1]: r for r in publish_reload(pg_url, tenant.domain_uuid, timeout=10)}
        assert set(replies) == {str(first.pid), str(second.pid)}
        assert replies[str(first.pid)].ok and not replies[str(second.pid)].ok
        assert FAILURE_TEXT in replies[str(second.pid)].message
        assert group.tenants_heard() == [[tenant.domain_uuid], [tenant.domain_uuid]]
        result = CliRunner().invoke(tenants, ["reload", "a.example", "--url", pg_url])
        assert result.exit_code == 1 and FAILURE_TEXT in result.output and f":{first.pid}: ok" in result.output
        # a controller that vanished is reported as not answering only while its connection lingers;
        # once it is gone from pg_stat_activity only live ones are expected
        second.terminate()
        second.wait(timeout=10)
        gevent.sleep(0.5)
        after = publish_reload(pg_url, None, timeout=5)
        assert [r.controller.rsplit(":", 1)[1] for r in after] == [str(first.pid)] and after[0].ok
