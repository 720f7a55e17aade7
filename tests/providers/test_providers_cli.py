"""``ivr providers`` against a real migrated SQLite database, in-process with CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from providers.tenant_set import TenantProviderConfig
from schema.database import make_engine, make_session_factory
from schema.migrate import upgrade
from schema.store import TenantStore
from schema.tenants import add_tenant
from scripts.providers_commands import providers


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("IVR_SECRET_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("IVR_TTS_CACHE_DIR", str(tmp_path / "tts"))
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    upgrade(url)
    engine = make_engine(url)
    add_tenant(make_session_factory(engine), "acme.example")
    engine.dispose()
    return url


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(providers, list(args))
    return result.exit_code, result.output


def test_set_validates_then_stores_with_secrets_encrypted(db_url: str) -> None:
    code, out = run("set", "acme.example", "llm", "openai", "--url", db_url, "--setting", "model=gpt-4o-mini",
                    "--secret", "api_key=sk-live-0123456789abcdef")
    assert code == 0, out
    assert "llm[0] = llm:openai (1 secret(s) stored encrypted)" in out
    code, out = run("set", "acme.example", "llm", "extractive", "--position", "1", "--url", db_url)
    assert code == 0, out
    code, out = run("list", "acme.example", "--url", db_url, "--json")
    rows = json.loads(out)
    assert [(r["kind"], r["position"], r["provider"]) for r in rows] == [("llm", 0, "openai"), ("llm", 1, "extractive")]
    assert "sk-live" not in out and rows[0]["secrets"]["api_key"].startswith("****")
    engine = make_engine(db_url)
    store = TenantStore.open(make_session_factory(engine), "acme.example")
    config = TenantProviderConfig.from_rows("acme", store.providers(decrypt=True))
    engine.dispose()
    assert [s.name for s in config.llm] == ["openai", "extractive"]
    assert config.llm[0].plain_secrets() == {"api_key": "sk-live-0123456789abcdef"}
    assert [s.name for s in config.tts] == ["piper", "flite"]                 # defaults where unset


@pytest.mark.parametrize("args,message", [
    (("tts", "pipr"), "did you mean 'piper'"),
    (("tts", "polly", "--setting", "sample_rate=44100", "--secret", "aws_access_key_id=a",
      "--secret", "aws_secret_access_key=b"), "sample_rate"),
    (("llm", "anthropic"), "missing secret(s): api_key"),
    (("tts", "piper", "--setting", "voice_path=/nowhere/voice.onnx"), "voice file not found"),
])
def test_set_rejects_bad_configuration_in_one_line(db_url: str, args: tuple[str, ...], message: str) -> None:
    code, out = run("set", "acme.example", *args, "--url", db_url)
    lines = [line for line in out.splitlines() if not line.startswith("warning: --secret")]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: ") and message in out
    assert "Traceback" not in out
    assert json.loads(run("list", "acme.example", "--url", db_url, "--json")[1]) == []


def test_secret_from_environment_and_remove(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DG_KEY", "dg-0123456789abcdef")
    code, out = run("set", "acme.example", "stt", "deepgram", "--secret", "api_key=env:DG_KEY", "--url", db_url)
    assert code == 0, out
    code, out = run("remove", "acme.example", "stt", "0", "--url", db_url)
    assert code == 0 and "removed stt[0] deepgram" in out
    code, out = run("remove", "acme.example", "stt", "0", "--url", db_url)
    assert code == 1 and "no stt provider at position 0" in out


def test_test_command_reports_each_provider(db_url: str) -> None:
    run("set", "acme.example", "tts", "flite", "--url", db_url)
    run("set", "acme.example", "llm", "openai_compatible", "--url", db_url,
        "--setting", "base_url=http://127.0.0.1:9/v1", "--setting", "model=llama3", "--setting", "timeout=2",
        "--setting", "retries=0")
    run("set", "acme.example", "llm", "extractive", "--position", "1", "--url", db_url)
    code, out = run("test", "acme.example", "--kind", "tts", "--kind", "llm", "--url", db_url)
    lines = out.splitlines()
    assert any(line.startswith("ok   tts:flite") for line in lines), out
    assert any(line.startswith("FAIL llm:openai_compatible") and "ProviderUnavailable" in line for line in lines)
    assert any(line.startswith("ok   llm:extractive") for line in lines)
    assert code == 1 and "1 of 3 provider(s) failed" in out


def test_available_lists_every_alias() -> None:
    code, out = run("available")
    assert code == 0
    assert "tts:polly  settings:" in out and "secrets: aws_access_key_id, aws_secret_access_key" in out
    assert "embeddings:sentence_transformers" in out


def test_a_secret_on_the_command_line_is_warned_about(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run("set", "acme.example", "stt", "deepgram", "--secret", "api_key=dg-0123456789abcdef",
                    "--url", db_url)
    assert code == 0, out
    assert "warning: --secret api_key=… puts the secret on the command line" in out and "ps" in out
    assert "dg-0123456789abcdef" not in out
    monkeypatch.setenv("DG_KEY", "dg-0123456789abcdef")
    code, out = run("set", "acme.example", "stt", "deepgram", "--secret", "api_key=env:DG_KEY", "--url", db_url)
    assert code == 0 and "warning" not in out
