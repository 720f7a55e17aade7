"""No call record is lost when the database hangs, and the spool leaves nothing behind per process.

Findings: with ``call_records`` locked by another session, three calls and then SIGTERM: the
records were neither in the database nor in the spool (the INSERT had no timeout, the pump was
abandoned at stop). Issue 10 item 8: one spool folder per controller pid was left behind.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from esl_controller.call_record import CallRecord
from esl_controller.database_wiring import CallRecordPump
from schema.call_records import CallRecordWriter, WriteResult
from schema.database import libpq_conninfo, make_engine, make_session_factory
from schema.migrate import upgrade
from schema.tenants import add_tenant

ROOT = Path(__file__).resolve().parents[2]


def _call(tenant_id: int, n: int) -> CallRecord:
    return CallRecord(call_uuid=f"00000000-0000-4000-8000-{n:012d}", tenant_id=tenant_id, caller="+15550001111",
                      destination="5000", started_at=time.time(), ended_at=time.time(), outcome="completed")


def _row(tenant_id: int, n: int) -> dict:
    from esl_controller.call_record import database_row

    return database_row(_call(tenant_id, n))


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM call_records")).scalar_one()


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_locked_table_spools_in_time_and_stopping_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    locker = psycopg.connect(libpq_conninfo(pg_url))
    locker.execute("LOCK TABLE call_records IN ACCESS EXCLUSIVE MODE")     # another session holds it
    try:
        writer = CallRecordWriter(engine, tmp_path / "spool", write_timeout=0.5)
        assert writer.write(_row(tenant.id, 0)) == WriteResult.SPOOLED      # not a hang: the timeout
        pump = CallRecordPump(writer, flush_every=3600, stop_seconds=0.2)
        for n in (1, 2, 3):                                                 # three calls end…
            pump(_call(tenant.id, n))
        pump.stop()                                                          # …then SIGTERM
        assert writer.pending() == 4, "every record is in the spool"
    finally:
        locker.rollback()
        locker.close()
    assert writer.flush_spool() == 4 and writer.pending() == 0
    assert _count(engine) == 4
    engine.dispose()


_WRITER = """
import sys
from gevent import monkey; monkey.patch_all()
from schema.call_records import CallRecordWriter
from schema.database import make_engine
from esl_controller.call_record import CallRecord, database_row
url, spool, tenant, first, count, mode = sys.argv[1:7]
writer = CallRecordWriter(make_engine(url, sqlite_busy_timeout=0.05), spool, retry_every=3600)
if mode == "write":
    for n in range(int(first), int(first) + int(count)):
        row = database_row(CallRecord(call_uuid=f"00000000-0000-4000-8000-{n:012d}", tenant_id=int(tenant),
                                      started_at=1.0, outcome="completed"))
        print(writer.write(row), flush=True)
else:
    print(writer.flush_spool(), flush=True)
"""


def _run(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, text=True)


def test_two_controller_processes_share_one_spool_and_flush_it_once(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    spool = tmp_path / "var" / "spool" / "call-records"
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        writers = [_run(sqlite_url, str(spool), str(tenant.id), str(first), "5", "write") for first in (0, 100)]
        outputs = [[line for line in p.communicate(timeout=120)[0].splitlines() if line in ("spooled", "stored")]
                   for p in writers]                       # (structlog's lines go to stdout too)
    finally:
        locker.rollback()
        locker.close()
    assert outputs == [["spooled"] * 5] * 2
    files = sorted((spool / "pending").glob("*.json"))
    assert len(files) == 10 and len({f.name.split("-")[1] for f in files}) == 2     # two pids, one folder
    assert sorted(p.name for p in spool.parent.iterdir()) == ["call-records"]        # nothing per pid
    flushers = [_run(sqlite_url, str(spool), str(tenant.id), "0", "0", "flush") for _ in range(2)]
    stored = [int(p.communicate(timeout=120)[0].splitlines()[-1]) for p in flushers]
    stored.append(CallRecordWriter(engine, spool).flush_spool())
    assert sum(stored) == 10 and _count(engine) == 10
    assert not list((spool / "pending").iterdir()) and not (spool / "rejected.jsonl").exists()
    engine.dispose()


def test_spool_folders_of_the_old_per_pid_layout_are_adopted_unless_still_held(sqlite_url: str,
                                                                             tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    spools = tmp_path / "var" / "spool"
    dead, alive = spools / "controller-999991", spools / "controller-999992"
    for folder, numbers in ((dead, (1, 2)), (alive, (3,))):
        folder.mkdir(parents=True)
        lines = [json.dumps({**_row(tenant.id, n)}) for n in numbers]
        (folder / "call-records.jsonl").write_text("\n".join(lines) + "\n")
        (folder / "call-records.lock").touch()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(alive / 'call-records.lock')!r}, 'a+')\n"
        "fcntl.flock(f.fileno(), fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        writer = CallRecordWriter(engine, spools / "call-records")
        assert writer.pending() == 2 and not dead.exists()
        assert alive.exists(), "a folder whose controller still runs is left to it"
        assert writer.flush_spool() == 2 and _count(engine) == 2
    finally:
        holder.kill()
        holder.wait()
    CallRecordWriter(engine, spools / "call-records").flush_spool()       # the next start adopts it
    assert not alive.exists() and _count(engine) == 3
    with open(spools / "call-records" / CallRecordWriter.FLUSH_LOCK) as handle:    # and the lock is free
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    engine.dispose()
