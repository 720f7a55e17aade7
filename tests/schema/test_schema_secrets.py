"""Provider secrets: encrypted at rest with MultiFernet keys from IVR_SECRET_KEYS, rotated to the newest
key, never printed in clear (repr, logs, CLI)."""

from __future__ import annotations

import pytest
import structlog
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from schema.errors import SecretKeyMissing, SecretUndecryptable
from schema.secrets import Secret, load_keys, mask, rotate
from schema.store import TenantStore
from schema.tenants import add_tenant
from scripts.tenants_commands import tenants

API_KEY = "sk-live-0123456789abcdefWXYZ"


def _raw_tokens(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT secrets_encrypted FROM provider_configs ORDER BY id"))]


def test_secrets_are_encrypted_at_rest_and_decrypt(sessions: sessionmaker[Session], engine: Engine,
                                                   secret_key: str) -> None:
    store = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    with structlog.testing.capture_logs() as logs:
        info = store.set_provider("tts", "elevenlabs", settings={"voice": "rachel"}, secrets={"api_key": API_KEY})
    assert info.secret_names == ("api_key",) and info.secrets is None
    [token] = _raw_tokens(engine)
    assert API_KEY not in token and "api_key" not in token
    assert Fernet(secret_key.encode()).decrypt(token.encode()) == b'{"api_key": "' + API_KEY.encode() + b'"}'
    assert store.providers(decrypt=True)[0].secrets["api_key"].reveal() == API_KEY  # type: ignore[index]
    assert API_KEY not in repr(logs)


def test_storing_a_secret_without_keys_is_a_clear_error(sessions: sessionmaker[Session],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_SECRET_KEYS", raising=False)
    store = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    with pytest.raises(SecretKeyMissing, match="IVR_SECRET_KEYS is not set"):
        store.set_provider("llm", "openai", secrets={"api_key": API_KEY})
    assert store.providers() == []
    store.set_provider("llm", "ollama", settings={"base_url": "http://127.0.0.1:11434"})  # no secret: fine
    monkeypatch.setenv("IVR_SECRET_KEYS", "not-a-fernet-key")
    with pytest.raises(SecretKeyMissing, match="key #1 is not a valid Fernet key"):
        load_keys()


def test_rotation_re_encrypts_with_the_newest_key(sessions: sessionmaker[Session], engine: Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("IVR_SECRET_KEYS", old)
    a = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    b = TenantStore(sessions, add_tenant(sessions, "b.example").id)
    a.set_provider("llm", "openai", secrets={"api_key": API_KEY})
    b.set_provider("stt", "deepgram", position=1, secrets={"api_key": "dg-key-b", "project": "p"})
    before = _raw_tokens(engine)
    monkeypatch.setenv("IVR_SECRET_KEYS", f"{new}, {old}")  # newest first
    assert rotate(engine) == 2
    after = _raw_tokens(engine)
    assert all(t1 != t2 for t1, t2 in zip(before, after, strict=True))
    monkeypatch.setenv("IVR_SECRET_KEYS", new)  # the old key can go now
    assert a.providers(decrypt=True)[0].secrets["api_key"].reveal() == API_KEY  # type: ignore[index]
    assert b.providers(decrypt=True)[0].secrets["project"].reveal() == "p"  # type: ignore[index]
    monkeypatch.setenv("IVR_SECRET_KEYS", old)
    with pytest.raises(SecretUndecryptable, match="cannot be decrypted"):
        a.providers(decrypt=True)
    with pytest.raises(SecretUndecryptable):  # nothing is rotated when a secret cannot be opened
        rotate(engine)
    assert _raw_tokens(engine) == after


def test_rotate_secrets_cli(sqlite_url: str, sessions: sessionmaker[Session], engine: Engine,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("IVR_SECRET_KEYS", old)
    TenantStore(sessions, add_tenant(sessions, "a.example").id).set_provider("llm", "openai",
                                                                           secrets={"api_key": API_KEY})
    monkeypatch.setenv("IVR_SECRET_KEYS", f"{new},{old}")
    result = CliRunner().invoke(tenants, ["rotate-secrets", "--url", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1" in result.output
    Fernet(new.encode()).decrypt(_raw_tokens(engine)[0].encode())  # readable with the new key alone
    monkeypatch.delenv("IVR_SECRET_KEYS")
    result = CliRunner().invoke(tenants, ["rotate-secrets", "--url", sqlite_url])
    assert result.exit_code == 1 and "IVR_SECRET_KEYS is not set" in result.output


def test_cli_show_masks_secrets(sqlite_url: str, sessions: sessionmaker[Session], secret_key: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = TenantStore(sessions, add_tenant(sessions, "a.example").id)
    store.set_provider("llm", "openai", secrets={"api_key": API_KEY, "org": "short"})
    for args in (["show", "a.example"], ["show", "a.example", "--json"]):
        result = CliRunner().invoke(tenants, [*args, "--url", sqlite_url])
        assert result.exit_code == 0, result.output
        assert "****WXYZ" in result.output and API_KEY not in result.output and "short" not in result.output
    monkeypatch.delenv("IVR_SECRET_KEYS")
    result = CliRunner().invoke(tenants, ["show", "a.example", "--url", sqlite_url])
    assert result.exit_code == 0 and "encrypted" in result.output and "WXYZ" not in result.output


def test_secret_values_never_print_themselves() -> None:
    secret = Secret(API_KEY)
    assert API_KEY not in repr(secret) and API_KEY not in str(secret) and API_KEY not in f"{secret}"
    assert secret.reveal() == API_KEY
    assert mask(API_KEY) == "****WXYZ" and mask("short") == "****" and mask("") == "****"
