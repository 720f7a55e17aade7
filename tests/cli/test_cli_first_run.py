"""What a new user meets first: a clear line instead of a traceback, a reason instead of silence."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from providers.tenant_set import default_cache_root
from scripts.cli import cli


def test_serve_on_a_database_never_migrated_says_what_to_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--database-url", f"sqlite:///{tmp_path / 'new.db'}", "--port", "0"])
    assert result.exit_code != 0
    assert "has no tables yet: run `ivr db upgrade` first" in result.output
    assert "Traceback" not in result.output


def test_a_simulated_call_sent_to_the_fallback_says_why(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    # A transfer target that is refused, with no error edge: the flow ends in `error`.
    (flows / "broken.yaml").write_text("flow: demo-main\nstart: x\nnodes:\n"
                                       "  x: {type: transfer, to: '1001 XML evil'}\n")
    result = CliRunner().invoke(cli, ["call", "simulate", "--flows-dir", str(flows), "--speed", "20",
                                      "--timeout", "60"])
    assert result.exit_code == 0, result.output
    assert "the controller sent the call to its fallback: error" in result.output


def test_synthesized_prompts_are_cached_under_the_var_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IVR_TTS_CACHE_DIR", raising=False)
    monkeypatch.setenv("IVR_VAR_DIR", str(tmp_path / "var"))
    assert default_cache_root() == (tmp_path / "var" / "tts-cache").resolve()
    monkeypatch.setenv("IVR_TTS_CACHE_DIR", str(tmp_path / "cache"))
    assert default_cache_root() == (tmp_path / "cache").resolve()
