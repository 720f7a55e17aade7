"""Test session set-up: gevent monkey-patching happens here, before anything imports psycopg
(psycopg 3 picks its wait function at import time) or opens a socket."""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "esl"))


# ---- PostgreSQL: a fresh database per test on the server given by IVR_TEST_PG_URL (.ci/run sets it)
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

PG_ENV = "IVR_TEST_PG_URL"


def pg_admin_url() -> str:
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        pytest.skip(f"{PG_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    from schema.database import libpq_conninfo, normalize_url

    admin = pg_admin_url()
    name = f"ivr_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(admin), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = normalize_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with psycopg.connect(libpq_conninfo(admin), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
