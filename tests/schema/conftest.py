"""Fixtures of the schema tests: migrated SQLite databases, a temporary PostgreSQL database (when
IVR_TEST_PG_URL is set), a throwaway PostgreSQL cluster we can stop (when the binaries exist),
Fernet keys, and two populated tenants."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from schema.database import make_engine, make_session_factory
from schema.migrate import upgrade
from schema.store import ChunkInput, TenantStore
from schema.tenants import add_tenant

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("IVR_SECRET_KEYS", key)
    return key


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


# ---- a throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir, on a free port) ----------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    bindir: Path
    datadir: Path
    port: int
    user: str | None  # run the server as this user (initdb refuses root)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.datadir), "-o", opts, "-l", str(self.datadir / "log"),
                  "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "30", "stop")


@pytest.fixture
def pg_cluster() -> Iterator[Cluster]:
    bins = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    bindir = Path(bins[-1]).parent
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing")
        user = "postgres"
    base = Path(tempfile.mkdtemp(prefix="ivr-pg-"))  # /tmp is traversable by the postgres user
    datadir = base / "data"
    datadir.mkdir()
    if user:
        shutil.chown(base, user)
        shutil.chown(datadir, user)
    cluster = Cluster(bindir=bindir, datadir=datadir, port=free_port(), user=user)
    cluster._run("initdb", "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(base, ignore_errors=True)


# ---- two tenants with one of everything -------------------------------------------------------------


@dataclass
class TwoTenants:
    a: TenantStore
    b: TenantStore
    a_version_id: int
    a_document_id: int
    a_chunk_ids: list[int]
    a_provider_id: int
    a_call_uuid: str


FLOW_A = "flow: main\nstart: hi\nnodes:\n  hi: {type: hangup, say: 'Tenant A secret menu'}\n"
FLOW_B = "flow: main\nstart: hi\nnodes:\n  hi: {type: hangup, say: 'Hello from B'}\n"


@pytest.fixture
def two_tenants(sessions: sessionmaker[Session], engine: Engine, secret_key: str,
                tmp_path_factory: pytest.TempPathFactory) -> TwoTenants:
    import datetime as dt

    from schema.call_records import CallRecordWriter

    ta = add_tenant(sessions, "a.example", max_concurrent_calls=2)
    tb = add_tenant(sessions, "b.example")
    a, b = TenantStore(sessions, ta.id), TenantStore(sessions, tb.id)
    version, _ = a.add_version("main", FLOW_A, author="alice")
    b.add_version("main", FLOW_B, author="bob")
    a.set_route("5000", "main")
    b.set_route("6000", "main")
    doc = a.add_document("kb/a-prices.md", sha256="0" * 64, title="A prices", embedding_model="m",
                         chunks=[ChunkInput("A's secret price is 42", 0), ChunkInput("A's hours", 1)])
    b.add_document("kb/b.md", sha256="1" * 64, title="B", embedding_model="m", chunks=[ChunkInput("B text", 0)])
    provider = a.set_provider("llm", "openai", settings={"model": "gpt-4o-mini"},
                              secrets={"api_key": "sk-tenant-a-very-secret-key-1234"})
    call_uuid = str(uuid.uuid4())
    with CallRecordWriter(engine, tmp_path_factory.mktemp("spool")) as writer:
        writer.write({"call_uuid": call_uuid, "tenant_id": ta.id, "caller": "+15551234567",
                      "destination": "5000", "started_at": dt.datetime.now(dt.UTC),
                      "recordings": ["/var/recordings/a/secret.wav"], "outcome": "completed"})
    return TwoTenants(a=a, b=b, a_version_id=version.id, a_document_id=doc.id,
                      a_chunk_ids=[c.id for c in a.chunks(doc.id)], a_provider_id=provider.id,
                      a_call_uuid=call_uuid)
