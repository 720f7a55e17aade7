"""``ivr calls``: operators see call records without opening the database — listed with filters,
one call shown turn by turn (path, heard words, passages, answer, latencies, recordings), exported."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from schema.call_records import CallRecordWriter
from schema.database import make_engine, make_session_factory
from schema.migrate import upgrade
from schema.tenants import add_tenant
from scripts.calls_commands import parse_since
from scripts.cli import cli

NOW = dt.datetime.now(dt.UTC)
TURN = {"node": "assistant", "turn": 1, "caller": "what are your opening hours", "stt": "stt:pocketsphinx",
        "streamed_stt": True, "sources": [{"source": "hours.md › Regular hours", "score": 0.6038}],
        "answer": "We are open Monday to Friday from 8 am to 6 pm.", "llm": "llm:extractive", "outcome": "answer",
        "latency_ms": {"end_of_speech_ms": 745.1, "stt_ms": 21.8, "playback_start_ms": 512.0}}
MENU_STEP = {"flow": "main", "node": "menu", "type": "menu", "outcome": "2", "start_ms": 10, "duration_ms": 4200,
             "detail": {"attempts": 1, "no_input": 0, "no_match": 0,
                        "heard": [{"attempt": 1, "text": "support please", "stt": "stt:pocketsphinx", "option": "2"}]}}


def record(tenant_id: int, n: int, *, minutes_ago: float, outcome: str, caller: str, **extra: object) -> dict:
    start = NOW - dt.timedelta(minutes=minutes_ago)
    return {"call_uuid": f"00000000-0000-0000-0000-{n:012d}", "tenant_id": tenant_id, "caller": caller,
            "destination": "5000", "started_at": start, "answered_at": start + dt.timedelta(seconds=1),
            "ended_at": start + dt.timedelta(seconds=42), "outcome": outcome, "hangup_cause": "NORMAL_CLEARING",
            "flow_name": "main", "path": [MENU_STEP], "recordings": [], "turns": [], "latencies": {}, **extra}


@pytest.fixture()
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    a, b = add_tenant(sessions, "a.example"), add_tenant(sessions, "b.example")
    writer = CallRecordWriter(engine, tmp_path / "spool")
    writer.write(record(a.id, 1, minutes_ago=300, outcome="transferred", caller="5551111"))
    writer.write(record(a.id, 2, minutes_ago=20, outcome="caller_hangup", caller="5552222", turns=[TURN],
                        recordings=[{"node": "vm", "path": "/var/rec/x.wav", "duration_ms": 3100, "stop": "silence",
                                     "transcript": "call me back"}]))
    writer.write(record(b.id, 3, minutes_ago=10, outcome="transferred", caller="5553333"))
    writer.close()
    engine.dispose()
    return url


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_every_tenant_newest_first_and_filtered(url: str) -> None:
    lines = run("calls", "list", "--url", url).splitlines()
    assert [line.split()[-1][-1] for line in lines[1:]] == ["3", "2", "1"]
    assert "b.example" in lines[1] and "a.example" in lines[2]
    only_a = [json.loads(x) for x in run("calls", "list", "--url", url, "a.example", "--json").splitlines()]
    assert [r["caller"] for r in only_a] == ["5552222", "5551111"]
    recent = [json.loads(x) for x in run("calls", "list", "--url", url, "--since", "1h", "--json").splitlines()]
    assert {r["call_uuid"][-1] for r in recent} == {"2", "3"}
    moved = [json.loads(x)
             for x in run("calls", "list", "--url", url, "--outcome", "transferred", "--json").splitlines()]
    assert {r["tenant"] for r in moved} == {"a.example", "b.example"}
    assert [json.loads(x)["call_uuid"][-1] for x in run("calls", "list", "--url", url, "--number", "5553333",
                                                        "--json").splitlines()] == ["3"]


def test_show_one_call_turn_by_turn(url: str) -> None:
    out = run("calls", "show", "--url", url, "00000000-0000-0000-0000-000000000002")
    assert "outcome caller_hangup" in out and "tenant a.example" in out
    assert "menu (menu) -> 2" in out and "heard (attempt 1, stt:pocketsphinx): 'support please' -> option 2" in out
    assert "caller: 'what are your opening hours'" in out
    assert "source 0.604  hours.md › Regular hours" in out
    assert "answer (llm:extractive): 'We are open Monday to Friday from 8 am to 6 pm.'" in out
    assert "end_of_speech=745.1" in out and "recording vm: /var/rec/x.wav" in out
    shown = json.loads(run("calls", "show", "--url", url, "00000000-0000-0000-0000-000000000002", "--json"))
    assert shown["turns"][0]["caller"] == TURN["caller"]
    missing = CliRunner().invoke(cli, ["calls", "show", "--url", url, "nope"])
    assert missing.exit_code != 0 and "no call record" in missing.output


def test_export_csv_and_jsonl(url: str, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(run("calls", "export", "--url", url))))
    assert len(rows) == 3 and rows[0]["outcome"] == "transferred" and rows[0]["seconds"] == "42.0"
    target = tmp_path / "calls.jsonl"
    run("calls", "export", "--url", url, "a.example", "--format", "jsonl", "-o", str(target))
    exported = [json.loads(x) for x in target.read_text().splitlines()]
    assert [len(r["turns"]) for r in exported] == [1, 0]


def test_since_accepts_durations_and_dates() -> None:
    now = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
    assert parse_since("2h", now=now) == dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC)
    assert parse_since("2026-12-01", now=now) == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert parse_since(None) is None

