"""Call records survive a database that is locked, missing or down: they are spooled to disk and
flushed later, none lost and none duplicated (SQLite here; a throwaway PostgreSQL cluster we stop
and restart when the server binaries exist)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, text

from schema.call_records import CallRecordWriter, WriteResult
from schema.database import make_engine, make_session_factory
from schema.errors import CallRecordInvalid
from schema.migrate import upgrade
from schema.store import TenantStore
from schema.tenants import add_tenant


def _record(tenant_id: int, n: int, **extra: Any) -> dict[str, Any]:
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
    return {"call_uuid": f"00000000-0000-0000-0000-{n:012d}", "tenant_id": tenant_id, "caller": "+15550001111",
            "destination": "5000", "started_at": start, "answered_at": start + dt.timedelta(seconds=1),
            "ended_at": start + dt.timedelta(seconds=30), "outcome": "completed", "hangup_cause": "NORMAL_CLEARING",
            "flow_name": "demo", "path": ["welcome", "menu", f"n{n}"], "recordings": [],
            "turns": [{"role": "caller", "text": f"turn {n}"}], "latencies": {"tts_ms": n}, **extra}


def _rows(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT call_uuid, outcome FROM call_records ORDER BY call_uuid"))]


def test_records_round_trip_with_all_fields(engine: Engine, tmp_path: Path) -> None:
    sessions = make_session_factory(engine)
    tenant = add_tenant(sessions, "a.example")
    with CallRecordWriter(engine, tmp_path / "spool") as writer:
        assert writer.write(_record(tenant.id, 1, recordings=[{"path": "/r/1.wav", "seconds": 3.5}])) == "stored"
        assert writer.write({"call_uuid": _record(0, 1)["call_uuid"], "tenant_id": tenant.id,
                             "outcome": "transferred"}) == WriteResult.STORED  # partial update keeps the rest
    got = TenantStore(sessions, tenant.id).call_record(_record(0, 1)["call_uuid"])
    assert got.outcome == "transferred" and got.caller == "+15550001111"
    assert got.started_at == dt.datetime(2026, 1, 1, 12, 1, tzinfo=dt.UTC)
    assert got.path == ["welcome", "menu", "n1"] and got.latencies == {"tts_ms": 1}
    assert got.recordings == [{"path": "/r/1.wav", "seconds": 3.5}]
    assert got.turns == [{"role": "caller", "text": "turn 1"}]


@pytest.mark.parametrize("bad", [{"tenant_id": 1}, {"call_uuid": "x"}, {"call_uuid": "x", "tenant_id": 1, "color": 1},
                                 {"call_uuid": "x", "tenant_id": 1, "started_at": dt.datetime(2026, 1, 1)},
                                 {"call_uuid": "x", "tenant_id": 1, "path": [object()]}])
def test_invalid_records_are_refused(engine: Engine, tmp_path: Path, bad: dict[str, Any]) -> None:
    with CallRecordWriter(engine, tmp_path / "spool") as writer, pytest.raises(CallRecordInvalid):
        writer.write(bad)


def test_sqlite_locked_database_spools_then_flushes(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url, sqlite_busy_timeout=0.05)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    writer = CallRecordWriter(engine, tmp_path / "spool", retry_every=0)
    assert writer.write(_record(tenant.id, 0)) == WriteResult.STORED
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        results = [writer.write(_record(tenant.id, n)) for n in range(1, 6)]
        results.append(writer.write(_record(tenant.id, 0, outcome="updated-while-locked")))
        assert results == [WriteResult.SPOOLED] * 6
        assert writer.pending() == 6
        assert writer.flush_spool() == 0 and writer.pending() == 6
        files = sorted((tmp_path / "spool" / "pending").glob("*.json"))
        assert [json.loads(f.read_text())["call_uuid"][-2:] for f in files] == ["01", "02", "03", "04", "05", "00"]
    finally:
        locker.rollback()
        locker.close()
    # the database is back: the next write joins the queue behind the spooled ones, then all flush
    assert writer.write(_record(tenant.id, 6)) == WriteResult.SPOOLED
    assert writer.pending() == 0 and writer.flush_spool() == 0
    rows = _rows(engine)
    assert [uuid_[-2:] for uuid_, _ in rows] == ["00", "01", "02", "03", "04", "05", "06"]
    assert dict(rows)[_record(0, 0)["call_uuid"]] == "updated-while-locked"
    assert not list((tmp_path / "spool" / "pending").iterdir())
    writer.close()
    engine.dispose()


def test_sqlite_missing_database_file_spools_then_flushes(sqlite_url: str, tmp_path: Path) -> None:
    db_path = Path(sqlite_url.removeprefix("sqlite:///"))
    engine = make_engine(sqlite_url)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    with CallRecordWriter(engine, tmp_path / "spool") as writer:
        writer.write(_record(tenant.id, 0))
        engine.dispose()
        away = tmp_path / "away"
        away.mkdir()
        for f in db_path.parent.glob(db_path.name + "*"):
            shutil.move(f, away / f.name)          # the volume holding the database went away
        assert [writer.write(_record(tenant.id, n)) for n in (1, 2)] == [WriteResult.SPOOLED] * 2
        engine.dispose()
        for f in db_path.parent.glob(db_path.name + "*"):
            f.unlink()                              # the empty file SQLite created meanwhile
        for f in away.iterdir():
            shutil.move(f, db_path.parent / f.name)
        assert writer.flush_spool() == 2
    assert len(_rows(engine)) == 3
    engine.dispose()


def test_spool_cap_drops_with_an_error_logged(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url, sqlite_busy_timeout=0.05)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    one_line = len(json.dumps(_record(tenant.id, 1), default=str)) + 10
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with CallRecordWriter(engine, tmp_path / "spool", max_spool_bytes=2 * one_line) as writer, \
                structlog.testing.capture_logs() as logs:
            results = [writer.write(_record(tenant.id, n)) for n in range(1, 5)]
    finally:
        locker.rollback()
        locker.close()
    assert results == ["spooled", "spooled", "dropped", "dropped"]
    full = [e for e in logs if e["event"] == "call_record_spool_full"]
    assert len(full) == 2 and full[0]["log_level"] == "error"
    assert "+15550001111" not in repr(logs)  # caller numbers stay out of the logs
    engine.dispose()


def test_a_spooled_record_the_database_refuses_goes_to_the_rejected_file(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url, sqlite_busy_timeout=0.05)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    with CallRecordWriter(engine, tmp_path / "spool") as writer:
        try:
            writer.write(_record(tenant.id, 1))
            writer.write(_record(tenant.id + 999, 2))  # a tenant that does not exist (deleted meanwhile)
            writer.write(_record(tenant.id, 3))
        finally:
            locker.rollback()
            locker.close()
        assert writer.flush_spool() == 2 and writer.pending() == 0
    rejected = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and "IntegrityError" in json.loads(rejected[0])["reason"]
    assert json.loads(json.loads(rejected[0])["record"])["call_uuid"].endswith("02")
    assert [u[-2:] for u, _ in _rows(engine)] == ["01", "03"]
    engine.dispose()


@pytest.mark.slow
def test_postgres_stopped_mid_way_loses_nothing(pg_cluster: Any, tmp_path: Path) -> None:
    upgrade(pg_cluster.url)
    engine = make_engine(pg_cluster.url, pg_connect_timeout=2)
    tenant = add_tenant(make_session_factory(engine), "a.example")
    writer = CallRecordWriter(engine, tmp_path / "spool")
    results: list[WriteResult] = []
    for n in range(30):
        if n == 10:
            pg_cluster.stop()
        if n == 20:
            pg_cluster.start()
        results.append(writer.write(_record(tenant.id, n)))
        if n == 15:  # a record written before the outage is updated during it
            results.append(writer.write(_record(tenant.id, 3, outcome="updated-during-outage")))
    assert results[:10] == [WriteResult.STORED] * 10
    assert WriteResult.SPOOLED in results[10:20] and WriteResult.DROPPED not in results
    writer.flush_spool()
    assert writer.pending() == 0
    rows = _rows(engine)
    assert len(rows) == 30 and len({u for u, _ in rows}) == 30
    assert dict(rows)[_record(0, 3)["call_uuid"]] == "updated-during-outage"
    writer.close()
    engine.dispose()

