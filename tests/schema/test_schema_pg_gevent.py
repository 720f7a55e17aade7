"""psycopg 3 cooperates with gevent through our engine: ten `pg_sleep(1)` queries in ten greenlets take
about one second, not ten.  Runs in a fresh subprocess that monkey-patches before importing psycopg
(psycopg picks its wait function at import time), so it does not depend on test ordering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
from gevent import monkey
monkey.patch_all()

import json, sys, time
import gevent
from sqlalchemy import text
from schema.database import make_engine

engine = make_engine(sys.argv[1], pool_size=10, max_overflow=0)
with engine.connect() as conn:  # open one connection first so the timing is the queries, not psycopg's import
    conn.execute(text("SELECT 1"))

def sleeper(n):
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_sleep(1), :n"), {"n": n}).one()[1]

start = time.monotonic()
jobs = [gevent.spawn(sleeper, n) for n in range(10)]
gevent.joinall(jobs, timeout=30, raise_error=True)
elapsed = time.monotonic() - start
engine.dispose()
print(json.dumps({"elapsed": elapsed, "results": sorted(j.value for j in jobs)}))
"""


@pytest.mark.postgres
def test_ten_pg_sleeps_in_ten_greenlets_overlap() -> None:
    url = os.environ.get("IVR_TEST_PG_URL", "").strip()
    if not url:
        pytest.skip("IVR_TEST_PG_URL is not set")
    proc = subprocess.run([sys.executable, "-c", CHILD, url], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=os.environ | {"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["results"] == list(range(10))
    # ten one-second sleeps: serial would take >= 10 s; < 5 s proves they ran concurrently
    assert out["elapsed"] < 5, f"queries did not overlap: {out['elapsed']:.1f}s"
