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


@pytest.mark.parametrize(("content", "message"), [
    (("flow: x\nstart: s\ndescription: caf\xe9\nnodes: {s: {type: hangup}}\n").encode("latin-1"),
     ":3:17: the file is not UTF-8 text (byte 0xe9)"),
    (b"flow: x\nstart: s\nnodes:\n  s: !!python/object/apply:os.system ['id']\n",
     ":4:6: YAML tag '!!python/object/apply:os.system' is not allowed"),
    (b"flow: x\nstart: s\nvars: {v: " + b"[" * 2000 + b"]" * 2000 + b"}\nnodes: {s: {type: hangup}}\n",
     "nested deeper than 32 levels"),
    (b'flow: x\nstart: s\nnodes:\n  s: {type: say, text: "{{ 9**(9**7) }}", next: h}\n  h: {type: hangup}\n',
     ":4:24: node 's': text: template: 9 ** 4782969 is larger than 4096 bits"),
])
def test_publish_gives_file_line_messages_for_hostile_flows(env, content: bytes, message: str):
    """Finding: a Latin-1 file on `publish` was a raw UnicodeDecodeError; nesting, a python tag and a
    huge exponent were raw RecursionError / TypeError / ValueError tracebacks."""
    ivr, tmp = env
    path = tmp / "hostile.yaml"
    path.write_bytes(content)
    result = ivr("flows", "publish", "acme.example", str(path), ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path}{message}" in result.output or message in result.output, result.output
    assert "nothing was published" in result.output
