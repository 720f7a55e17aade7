"""`ivr flows publish|history|rollback|export` against a real SQLite database, tenant by tenant."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scripts.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "flows"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    monkeypatch.setenv("IVR_DATABASE_URL", url)
    monkeypatch.setenv("IVR_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path / "run"))
    runner = CliRunner()

    def ivr(*args: str, ok: bool = True):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    ivr("db", "upgrade")
    ivr("tenants", "add", "acme.example", "--uuid", "aaaaaaaa-0000-4000-8000-000000000001")
    ivr("tenants", "add", "other.example", "--uuid", "bbbbbbbb-0000-4000-8000-000000000002")
    return ivr, tmp_path


def test_publish_history_rollback_export(env):
    ivr, tmp = env
    first = ivr("flows", "publish", "acme.example", str(EXAMPLES / "demo.yaml"))
    assert "demo-main v1 published" in first.output
    again = ivr("flows", "publish", "acme.example", str(EXAMPLES / "demo.yaml"))
    assert "already published" in again.output
    changed = tmp / "demo.yaml"
    changed.write_text((EXAMPLES / "demo.yaml").read_text().replace("Welcome to the demo company.",
                                                                   "Welcome back to the demo company."))
    assert "demo-main v2 published" in ivr("flows", "publish", "acme.example", str(changed)).output
    history = ivr("flows", "history", "acme.example", "demo-main").output.splitlines()
    assert history[0].startswith("* v2") and history[1].startswith("  v1")
    assert "Welcome back" in ivr("flows", "export", "acme.example", "demo-main").output
    assert "v1 published" in ivr("flows", "rollback", "acme.example", "demo-main").output
    assert "Welcome back" not in ivr("flows", "export", "acme.example", "demo-main").output
    assert "Welcome back" in ivr("flows", "export", "acme.example", "demo-main", "--version", "2").output


def test_an_invalid_flow_is_never_published(env):
    ivr, tmp = env
    broken = tmp / "broken.yaml"
    broken.write_text((EXAMPLES / "demo.yaml").read_text().replace("type: menu", "type: menuu"))
    result = ivr("flows", "publish", "acme.example", str(broken), ok=False)
    assert result.exit_code != 0
    assert "did you mean 'menu'" in result.output
    assert ivr("flows", "history", "acme.example", "demo-main", ok=False).exit_code != 0


def test_another_tenant_cannot_read_or_roll_back_a_flow(env):
    ivr, _ = env
    ivr("flows", "publish", "acme.example", str(EXAMPLES / "demo.yaml"))
    for args in (("export", "other.example", "demo-main"), ("history", "other.example", "demo-main"),
                 ("rollback", "other.example", "demo-main", "1")):
        result = ivr("flows", *args, ok=False)
        assert result.exit_code != 0, args
        assert "Welcome" not in result.output
