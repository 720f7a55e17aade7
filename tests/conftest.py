"""Test session set-up: gevent monkey-patching happens here, before anything imports psycopg
(psycopg 3 picks its wait function at import time) or opens a socket; and the PostgreSQL fixtures
(`pg_url` on IVR_TEST_PG_URL; `pgvector_url` on IVR_TEST_PGVECTOR_URL or a pgserver per session)."""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "esl"))


# ---- PostgreSQL: a fresh database per test on the server given by IVR_TEST_PG_URL (.ci/run sets it)
import importlib.util  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

PG_ENV = "IVR_TEST_PG_URL"
PGVECTOR_ENV = "IVR_TEST_PGVECTOR_URL"


def pg_admin_url() -> str:
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        pytest.skip(f"{PG_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    return url


@contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """A new, empty database on the server of `admin` (an SQLAlchemy psycopg URL), dropped afterwards."""
    import psycopg

    from schema.database import libpq_conninfo, normalize_url

    name = f"ivr_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(admin), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = normalize_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with psycopg.connect(libpq_conninfo(admin), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with fresh_database(pg_admin_url()) as url:
        yield url


# ---- PostgreSQL with pgvector: IVR_TEST_PGVECTOR_URL (a server that has the extension), else one
# `pgserver` (PostgreSQL 16 + pgvector from PyPI, the `test` extra) per session, else skipped.
# pgserver runs in child processes (not monkey-patched, bounded by timeouts), so its blocking waits,
# file locks and atexit hooks never run in this gevent process.
_PGSERVER_START = """
import sys, pgserver
print(pgserver.get_server(sys.argv[1], cleanup_mode=None).get_uri(), flush=True)
"""
_PGSERVER_STOP = """
import sys, pgserver
pgserver.get_server(sys.argv[1], cleanup_mode="stop").cleanup()
"""
PGSERVER_TIMEOUT = 90.0        # below pytest-timeout's 120 s, so this message is the one seen


def _pgserver(script: str, pgdata: Path) -> str:
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(pgdata)], capture_output=True,
                            text=True, timeout=PGSERVER_TIMEOUT, check=False)
    if result.returncode != 0:
        log = pgdata / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        raise RuntimeError(f"pgserver exited with {result.returncode}: {result.stderr[-2000:]}\n{tail}")
    return result.stdout.strip()


@pytest.fixture(scope="session")
def pgvector_admin_url() -> Iterator[str]:
    """An SQLAlchemy URL (psycopg driver) of a PostgreSQL server that has the pgvector extension."""
    from schema.database import libpq_conninfo, normalize_url

    given = os.environ.get(PGVECTOR_ENV, "").strip()
    if given:
        import psycopg

        url = normalize_url(given).render_as_string(hide_password=False)
        with psycopg.connect(libpq_conninfo(url), autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is None:
                pytest.fail(f"{PGVECTOR_ENV} names a PostgreSQL without the vector extension")
        yield url
        return
    if importlib.util.find_spec("pgserver") is None:
        pytest.skip(f"neither {PGVECTOR_ENV} nor the pgserver package (pip install -e '.[test]') is available")
    # Not under pytest's basetemp: as root, pgserver opens every parent folder to its `pgserver`
    # user, and pytest-of-<user> must stay private.
    folder = Path(tempfile.mkdtemp(prefix="ivr-pgvector-"))
    pgdata = folder / "pgdata"
    try:
        try:
            uri = _pgserver(_PGSERVER_START, pgdata)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            pytest.fail(f"pgserver did not start in {folder}: {e}")
        yield normalize_url(uri).render_as_string(hide_password=False)
    finally:
        stopped = True
        if (pgdata / "postmaster.pid").exists():
            try:
                _pgserver(_PGSERVER_STOP, pgdata)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                stopped = False
                print(f"pgserver in {folder} did not stop (left in place): {e}", file=sys.stderr)
        if stopped:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pgvector_url(pgvector_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on a PostgreSQL that has pgvector (the extension not yet created), dropped after."""
    with fresh_database(pgvector_admin_url) as url:
        yield url
