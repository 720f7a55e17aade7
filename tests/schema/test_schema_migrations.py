"""Migrations run up from an empty database (SQLite, and PostgreSQL when IVR_TEST_PG_URL is set), match
the models exactly, and make flow versions immutable in SQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from schema.database import default_url, make_engine, make_session_factory, normalize_url
from schema.migrate import alembic_config, current_revision, head_revision, upgrade
from schema.store import TenantStore
from schema.tenants import add_tenant

TABLES = {"tenants", "routes", "flows", "flow_versions", "provider_configs", "documents", "chunks",
          "call_records", "alembic_version", "whatsapp_accounts", "whatsapp_conversations",
          "whatsapp_messages", "whatsapp_outbound", "whatsapp_dead_letters"}


def _check_migrated(url: str) -> None:
    assert current_revision(url) is None
    assert upgrade(url) == head_revision()
    assert current_revision(url) == head_revision()
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
        with engine.begin() as conn:  # autogenerate finds nothing to add: the migration matches the models
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.check(cfg)
        sessions = make_session_factory(engine)
        store = TenantStore(sessions, add_tenant(sessions, "t.example").id)
        version, _ = store.add_version("f", "flow: f\n", author="x")
        with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
            conn.execute(text("UPDATE flow_versions SET yaml_text = 'changed' WHERE id = :id"), {"id": version.id})
        assert store.version(version.id).yaml_text == "flow: f\n"
        assert upgrade(url) == head_revision()  # running it again is a no-op
    finally:
        engine.dispose()


def test_sqlite_migrates_up_from_empty(tmp_path: Path) -> None:
    _check_migrated(f"sqlite:///{tmp_path / 'sub' / 'ivr.db'}")
    assert (tmp_path / "sub" / "ivr.db").is_file()


def test_sqlite_tables_never_reuse_ids(sqlite_url: str) -> None:
    """Chunk ids live in vector indexes and version ids in call records: a deleted id must not come back."""
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                     "AND name NOT IN ('alembic_version', 'sqlite_sequence')")).all()
        assert {name for name, _ in rows} == TABLES - {"alembic_version"}
        assert [name for name, sql in rows if "AUTOINCREMENT" not in sql] == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_migrates_up_from_empty(pg_url: str) -> None:
    _check_migrated(pg_url)   # asserts the revision, the tables, and that autogenerate finds nothing to add
    assert current_revision(pg_url) == head_revision()


def test_default_url_is_relative_sqlite_unless_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_DATABASE_URL", raising=False)
    assert default_url() == "sqlite:///var/ivr.db"
    monkeypatch.setenv("IVR_DATABASE_URL", "postgresql://u@h/db")
    assert default_url() == "postgresql://u@h/db"
    assert normalize_url(default_url()).drivername == "postgresql+psycopg"


def test_migrations_ship_inside_the_package() -> None:
    script_location = Path(alembic_config().get_main_option("script_location") or "")
    assert script_location.is_dir() and (script_location / "env.py").is_file()
    assert (script_location / "__init__.py").is_file() and (script_location / "versions" / "__init__.py").is_file()
    assert not (Path(__file__).resolve().parents[2] / "schema" / "alembic.ini").exists()
