"""Database URLs, engines and sessions: SQLite embedded by default, PostgreSQL through psycopg 3.

`default_url()` is ``$IVR_DATABASE_URL`` or ``sqlite:///var/ivr.db`` (relative to the working
directory).  `make_engine()` normalises ``postgresql://``/``postgres://`` to the psycopg 3 driver,
creates the SQLite file's folder, turns on SQLite foreign keys and WAL, and gives PostgreSQL a
connect timeout and pre-ping so a restarted server is noticed instead of failing one query.

psycopg 3 cooperates with gevent only if ``gevent.monkey.patch_all()`` ran before psycopg was
first imported; this module never patches (entry points do).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from schema.errors import DatabaseUnavailable

DEFAULT_SQLITE_URL = "sqlite:///var/ivr.db"
SessionFactory = Callable[[], Session]


def default_url() -> str:
    """``$IVR_DATABASE_URL`` if set and not empty, else ``sqlite:///var/ivr.db`` (relative to cwd)."""
    return os.environ.get("IVR_DATABASE_URL", "").strip() or DEFAULT_SQLITE_URL


def normalize_url(url: str | URL) -> URL:
    """Parse `url`, mapping plain PostgreSQL URLs to the psycopg 3 driver."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_postgres(url: str | URL) -> bool:
    return normalize_url(url).get_backend_name() == "postgresql"


def is_sqlite(url: str | URL) -> bool:
    return normalize_url(url).get_backend_name() == "sqlite"


def libpq_conninfo(url: str | URL) -> str:
    """The URL as a libpq connection string for plain ``psycopg.connect`` (no SQLAlchemy driver)."""
    parsed = normalize_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str | URL | None = None, *, sqlite_busy_timeout: float = 5.0,
                pg_connect_timeout: int = 5, **kwargs: Any) -> Engine:
    """An engine for `url` (default: `default_url()`), configured for this project."""
    parsed = normalize_url(url or default_url())
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", sqlite_busy_timeout)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", pg_connect_timeout)
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, connect_args=connect_args, **kwargs)
    return create_engine(parsed, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (we hand out plain views, not live rows)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unavailable_as_error(what: str) -> Iterator[None]:
    """Map "cannot reach/open/lock the database" errors to `DatabaseUnavailable`."""
    try:
        yield
    except (OperationalError, InterfaceError) as e:
        reason = str(e.orig) if e.orig is not None else str(e)
        raise DatabaseUnavailable(f"{what}: {reason.strip()}") from e

