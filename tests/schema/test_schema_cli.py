"""The `db` and `tenants` click groups, run in-process with CliRunner against real SQLite files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from schema.database import make_engine, make_session_factory
from schema.migrate import head_revision
from schema.store import TenantStore
from scripts.db_commands import db
from scripts.tenants_commands import tenants

REPO = Path(__file__).resolve().parents[2]


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x' / 'ivr.db'}"
    runner = CliRunner()
    result = runner.invoke(db, ["current", "--url", url])
    assert result.exit_code == 0 and "(empty database)" in result.output
    result = runner.invoke(db, ["upgrade", "--url", url])
    head = head_revision()       # the newest migration (0002 adds the WhatsApp channel's tables)
    assert result.exit_code == 0 and f"database at revision {head}" in result.output
    result = runner.invoke(db, ["current", "--url", url])
    assert result.exit_code == 0 and f"current: {head}  head: {head}" in result.output


def test_db_upgrade_uses_ivr_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert CliRunner().invoke(db, ["upgrade"]).exit_code == 0
    assert (tmp_path / "env.db").is_file()


def test_db_upgrade_defaults_to_var_ivr_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(db, ["upgrade"]).exit_code == 0
    assert (tmp_path / "var" / "ivr.db").is_file()


def test_db_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(db, ["upgrade", "--url", "postgresql://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "Traceback" not in result.output


def test_db_seed_demo(tmp_path: Path) -> None:
    pytest.importorskip("ivr_flows")
    if not (REPO / "examples" / "flows" / "demo.yaml").is_file():
        pytest.skip("examples/flows/demo.yaml is not written yet")
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    args = ["seed-demo", "--url", url, "--flows-dir", str(REPO / "examples" / "flows")]
    first = CliRunner().invoke(db, args)
    assert first.exit_code == 0, first.output
    assert "tenant-a.example (11111111-1111-1111-1111-111111111111) created" in first.output
    assert "(new version)" in first.output
    second = CliRunner().invoke(db, args)
    last_line = second.output.strip().splitlines()[-1]  # (structlog may print events before it)
    assert second.exit_code == 0 and "(unchanged)" in last_line and "created" not in last_line
    missing = CliRunner().invoke(db, ["seed-demo", "--url", url, "--flows-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "demo flow not found" in missing.output


def test_tenants_add_list_show_update_route(sqlite_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(tenants, ["add", "acme.example", "--url", sqlite_url, "--uuid",
                                     "33333333-3333-3333-3333-333333333333", "--time-zone", "America/Sao_Paulo",
                                     "--max-calls", "5", "--over-limit-action", "announce",
                                     "--setting", "over_limit_prompt=All lines are busy",
                                     "--setting", "greeting_volume=3"])
    assert result.exit_code == 0, result.output
    assert "added tenant acme.example (33333333-3333-3333-3333-333333333333)" in result.output
    dup = runner.invoke(tenants, ["add", "acme.example", "--url", sqlite_url])
    assert dup.exit_code == 1 and "already exists" in dup.output
    bad = runner.invoke(tenants, ["add", "x.example", "--url", sqlite_url, "--time-zone", "Nowhere/None"])
    assert bad.exit_code == 1 and "unknown time zone" in bad.output

    listed = runner.invoke(tenants, ["list", "--url", sqlite_url, "--json"])
    [row] = json.loads(listed.output)
    assert row["settings"] == {"over_limit_prompt": "All lines are busy", "greeting_volume": 3}
    assert row["max_concurrent_calls"] == 5 and row["time_zone"] == "America/Sao_Paulo"
    assert "acme.example" in runner.invoke(tenants, ["list", "--url", sqlite_url]).output

    refused = runner.invoke(tenants, ["route", "acme.example", "5000", "main", "--url", sqlite_url])
    assert refused.exit_code == 1 and "no flow named 'main'" in refused.output      # a route to nothing
    engine = make_engine(sqlite_url)
    TenantStore.open(make_session_factory(engine), "acme.example").set_route("5000", "main", require_published=False)
    engine.dispose()
    updated = runner.invoke(tenants, ["update", "33333333-3333-3333-3333-333333333333", "--url", sqlite_url,
                                      "--max-calls", "7", "--setting", "over_limit_prompt=Busy, sorry"])
    assert updated.exit_code == 0, updated.output
    shown = json.loads(runner.invoke(tenants, ["show", "acme.example", "--url", sqlite_url, "--json"]).output)
    assert shown["max_concurrent_calls"] == 7 and shown["numbers"] == {"5000": "main"}
    assert shown["settings"] == {"over_limit_prompt": "Busy, sorry", "greeting_volume": 3}
    text = runner.invoke(tenants, ["show", "acme.example", "--url", sqlite_url]).output
    assert "5000 -> main" in text and "flows: none" in text and "providers: none" in text
    missing = runner.invoke(tenants, ["show", "nobody.example", "--url", sqlite_url])
    assert missing.exit_code == 1 and "unknown tenant 'nobody.example'" in missing.output


def test_tenants_show_lists_published_flows(sqlite_url: str) -> None:
    CliRunner().invoke(tenants, ["add", "acme.example", "--url", sqlite_url])
    engine = make_engine(sqlite_url)
    try:
        store = TenantStore.open(make_session_factory(engine), "acme.example")
        store.add_version("main", "flow: main\n", author="x")
        store.add_version("main", "flow: main\n# 2\n", author="x")
        store.add_version("draft", "flow: draft\n", author="x", publish=False)
    finally:
        engine.dispose()
    text = CliRunner().invoke(tenants, ["show", "acme.example", "--url", sqlite_url]).output
    assert "main: v2 published" in text and "draft: unpublished" in text
