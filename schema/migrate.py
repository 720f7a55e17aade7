"""Runs the Alembic migrations programmatically (`ivr db upgrade`), so an installed package needs no
alembic.ini: the script location is this package's `migrations/` folder."""

from __future__ import annotations

from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from schema.database import make_engine, normalize_url
from schema.errors import DatabaseUnavailable, MigrationError

log = structlog.get_logger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at our migrations (and at `url` when given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError("no migration found in " + str(MIGRATIONS_DIR))
    return head


def upgrade(url: str | URL | Engine | None = None, revision: str = "head") -> str:
    """Migrate the database at `url` (or engine) up to `revision`; returns the revision reached."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            reached = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise DatabaseUnavailable(f"cannot migrate {engine.url.render_as_string()}: {e}") from e
    except Exception as e:
        raise MigrationError(f"migration to {revision} failed: {e}") from e
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
    log.info("db_upgraded", url=engine.url.render_as_string(), revision=reached)
    return reached or ""


def current_revision(url: str | URL | Engine | None = None) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise DatabaseUnavailable(f"cannot read the schema revision: {e}") from e
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
