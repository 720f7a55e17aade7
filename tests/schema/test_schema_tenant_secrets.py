"""A tenant's own secrets (what a webhook's ``sign_with`` names): stored encrypted, listed masked,
rotated with the other secrets, carried into the tenant's snapshot, and handed to its calls."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from schema.errors import NotFound, SecretKeyMissing
from schema.secrets import rotate
from schema.snapshot import load_snapshot
from schema.tenant_secrets import remove_tenant_secret, set_tenant_secret, tenant_secrets
from schema.tenants import add_tenant
from scripts.cli import cli

VALUE = "crm-shared-secret-0123456789"


def test_a_secret_is_encrypted_at_rest_and_reaches_the_snapshot(sessions: sessionmaker[Session], engine: Engine,
                                                                 secret_key: str) -> None:
    add_tenant(sessions, "a.example")
    add_tenant(sessions, "b.example")
    set_tenant_secret(sessions, "a.example", "crm", VALUE)
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT secrets_encrypted FROM tenants"))]
    assert all(VALUE not in (token or "") for token in stored) and stored.count(None) == 1
    assert tenant_secrets(sessions, "a.example")["crm"].reveal() == VALUE
    assert tenant_secrets(sessions, "b.example") == {}                      # one tenant's are not another's
    snapshot = load_snapshot(sessions, "a.example")
    assert snapshot.secrets["crm"].reveal() == VALUE and "crm" not in repr(snapshot.secrets["crm"])
    remove_tenant_secret(sessions, "a.example", "crm")
    assert tenant_secrets(sessions, "a.example") == {}
    with pytest.raises(NotFound):
        remove_tenant_secret(sessions, "a.example", "crm")


def test_no_key_no_secret(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    add_tenant(sessions, "a.example")
    monkeypatch.delenv("IVR_SECRET_KEYS", raising=False)
    with pytest.raises(SecretKeyMissing):
        set_tenant_secret(sessions, "a.example", "crm", VALUE)


def test_rotation_covers_tenant_secrets(sessions: sessionmaker[Session], engine: Engine,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("IVR_SECRET_KEYS", old)
    add_tenant(sessions, "a.example")
    set_tenant_secret(sessions, "a.example", "crm", VALUE)
    monkeypatch.setenv("IVR_SECRET_KEYS", f"{new},{old}")
    assert rotate(engine) == 1
    monkeypatch.setenv("IVR_SECRET_KEYS", new)                            # the old key can go now
    assert tenant_secrets(sessions, "a.example")["crm"].reveal() == VALUE


def test_the_cli_stores_lists_masked_and_removes(sqlite_url: str, sessions: sessionmaker[Session], secret_key: str,
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path / "run"))
    add_tenant(sessions, "a.example")
    runner = CliRunner()
    monkeypatch.setenv("CRM_SECRET", VALUE)
    stored = runner.invoke(cli, ["tenants", "secret", "set", "--url", sqlite_url, "a.example", "crm",
                                 "--value", "env:CRM_SECRET"])
    assert stored.exit_code == 0, stored.output
    prompted = runner.invoke(cli, ["tenants", "secret", "set", "--url", sqlite_url, "a.example", "billing"],
                             input="s3cret-typed\ns3cret-typed\n")
    assert prompted.exit_code == 0, prompted.output
    listed = runner.invoke(cli, ["tenants", "secret", "list", "--url", sqlite_url, "a.example"])
    assert listed.exit_code == 0 and VALUE not in listed.output and "s3cret-typed" not in listed.output
    assert "crm  ****6789" in listed.output and "billing  ****" in listed.output
    bad = runner.invoke(cli, ["tenants", "secret", "set", "--url", sqlite_url, "a.example", "9 bad"])
    assert bad.exit_code != 0 and "secret name" in bad.output
    removed = runner.invoke(cli, ["tenants", "secret", "remove", "--url", sqlite_url, "a.example", "crm"])
    assert removed.exit_code == 0, removed.output
    assert set(tenant_secrets(sessions, "a.example")) == {"billing"}
