"""Call records: written at the end of (or during) a call, never lost when the database is down or hangs.

`CallRecordWriter.write(record)` upserts the record by call UUID within ``write_timeout`` seconds
(PostgreSQL: ``statement_timeout`` and ``lock_timeout`` for the transaction, and a cooperative
deadline around it for a server that stops answering; SQLite: the engine's busy timeout).  A
write that cannot finish in time — the database down, locked (say, ``LOCK TABLE call_records`` in
another session), unreadable — goes to the spool instead; `spool(record)` puts a record there
without trying the database (what a controller does with the records still queued when it
stops).  `flush_spool()`, called periodically by the controller, replays the spool in order once
the database is back.  While anything is spooled, new records join the spool too, so an older
version of a record can never overwrite a newer one.

The spool is one folder per var folder, shared by every controller process that uses it
(``var/spool/call-records``): one file per record in ``pending/`` (written to ``tmp/``, fsync'd,
then renamed, so a reader sees whole records only), named ``<time ns>-<pid>-<seq>.json`` so that
sorting them is their order.  Any process may flush; a flush holds ``flush.lock`` (``flock``), so
two never replay the same file, and a process that finds the lock taken leaves the flush to its
holder.  Nothing is left behind per process.  Spool folders of the older one-folder-per-pid layout
(``var/spool/controller-<pid>``) whose process is gone are adopted: their records move into the
shared spool and the folder is removed.

The spool has a size cap: past it a record is dropped with an error logged (`WriteResult.DROPPED`).
A spooled record the database refuses for good (say, its tenant was deleted) is moved to
``rejected.jsonl`` with the reason, never silently discarded.  A call UUID belongs to one tenant: a
record arriving with the same UUID under another tenant is refused, it never overwrites the first
tenant's row.
"""

from __future__ import annotations

import datetime as dt
import enum
import fcntl
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
import structlog
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError

from schema.errors import CallRecordError, CallRecordInvalid
from schema.models import CALL_RECORD_FIELDS, CallRecord, utcnow

log = structlog.get_logger(__name__)
DATETIME_FIELDS = ("started_at", "answered_at", "ended_at")
JSON_FIELDS = ("path", "recordings", "turns", "latencies")
DEFAULT_MAX_SPOOL_BYTES = 64 * 1024 * 1024
DEFAULT_WRITE_TIMEOUT = 3.0
STRING_LIMITS = {c.key: c.type.length for c in CallRecord.__table__.columns
                 if getattr(c.type, "length", None) and c.key != "call_uuid"}


def refused_for_good(error: SQLAlchemyError) -> bool:
    """The database refused this record itself (constraint, bad value): retrying cannot help.

    Anything else (down, unreachable, locked, unreadable, missing table) is the database's state,
    so the record is spooled and retried.
    """
    return isinstance(error, IntegrityError | DataError)


class WriteResult(enum.StrEnum):
    STORED = "stored"      # in the database
    SPOOLED = "spooled"    # on disk, waiting for flush_spool()
    DROPPED = "dropped"    # spool full: lost, and logged as an error


def normalize_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Check a record's keys and types; datetimes become aware UTC datetimes (ISO strings accepted)."""
    unknown = set(record) - CALL_RECORD_FIELDS
    if unknown:
        raise CallRecordInvalid(f"unknown call record field(s): {', '.join(sorted(unknown))}")
    if not record.get("call_uuid") or not isinstance(record["call_uuid"], str):
        raise CallRecordInvalid("a call record needs call_uuid (a string)")
    tenant_id = record.get("tenant_id")
    if not isinstance(tenant_id, int) or isinstance(tenant_id, bool):
        raise CallRecordInvalid("a call record needs tenant_id (an int)")
    if len(record["call_uuid"]) > 64:
        raise CallRecordInvalid("call_uuid is longer than 64 characters")
    values = dict(record)
    for name, limit in STRING_LIMITS.items():
        if isinstance(values.get(name), str):
            values[name] = values[name][:limit]
        elif name in values and values[name] is not None:
            raise CallRecordInvalid(f"{name} must be a string")
    for name in DATETIME_FIELDS:
        value = values.get(name)
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError as e:
                raise CallRecordInvalid(f"{name}: {value!r} is not an ISO datetime") from e
        if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
            raise CallRecordInvalid(f"{name} must be a timezone-aware datetime")
        if name in values:
            values[name] = value.astimezone(dt.UTC) if value is not None else None
    for name in JSON_FIELDS:
        if name in values:
            try:
                json.dumps(values[name])
            except (TypeError, ValueError) as e:
                raise CallRecordInvalid(f"{name} is not JSON-serialisable: {e}") from e
    return values


def _to_json_line(values: Mapping[str, Any]) -> str:
    plain = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in values.items()}
    return json.dumps(plain, separators=(",", ":"), sort_keys=True) + "\n"


class WriteTimedOut(OperationalError):
    """The database did not finish the write within ``write_timeout`` (treated like "unreachable")."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"call record write did not finish within {seconds:g}s", None, Exception("timeout"))


class CallRecordWriter:
    """Upserts call records, spooling them to disk while the database is unreachable or hangs."""

    PENDING = "pending"
    TMP = "tmp"
    REJECTED = "rejected.jsonl"
    FLUSH_LOCK = "flush.lock"
    LEGACY_PREFIX = "controller-"

    def __init__(self, engine: Engine, spool_dir: str | Path, *,
                 max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES, write_timeout: float = DEFAULT_WRITE_TIMEOUT,
                 retry_every: float = 2.0) -> None:
        self._engine = engine
        self.spool_dir = Path(spool_dir)
        self.pending_dir = self.spool_dir / self.PENDING
        self.tmp_dir = self.spool_dir / self.TMP
        self.rejected_path = self.spool_dir / self.REJECTED
        for folder in (self.pending_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.max_spool_bytes = max_spool_bytes
        self.write_timeout = write_timeout
        self.retry_every = retry_every
        self._lock = threading.RLock()       # this process's spool state
        self._seq = itertools.count()
        self._failed_at = 0.0                 # monotonic time of the last failure: no inline retry before retry_every
        self._spool_bytes = self._scan_bytes()
        self.adopt_legacy_spools()

    def close(self) -> None:
        """Nothing to release (kept for the context-manager protocol and callers that close)."""

    def __enter__(self) -> CallRecordWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- public -----------------------------------------------------------------------------------

    def pending(self) -> int:
        """How many records wait in the spool (every process's)."""
        return len(self._pending_files())

    def write(self, record: Mapping[str, Any]) -> WriteResult:
        """Store `record` (upsert by call_uuid), or spool it if the database is unreachable or hangs."""
        values = normalize_record(record)
        if self._pending_files():
            result = self._append(values)
            if time.monotonic() - self._failed_at >= self.retry_every:
                self.flush_spool()
            return result
        try:
            self._upsert(values)
            return WriteResult.STORED
        except SQLAlchemyError as e:
            if refused_for_good(e):
                raise CallRecordError(f"call record {values['call_uuid']} refused: {e.orig or e}") from e
            self._failed_at = time.monotonic()
            log.warning("call_record_spooled", call_uuid=values["call_uuid"], reason=_reason(e))
        return self._append(values)

    def spool(self, record: Mapping[str, Any]) -> WriteResult:
        """Put `record` in the spool without trying the database (shutdown, a write interrupted)."""
        return self._append(normalize_record(record))

    def flush_spool(self) -> int:
        """Replay the spool into the database in order; returns how many records were stored.

        Stops at the first error that is the database's state (down, locked, timed out…), keeping that
        record and the rest; a record the database refuses for good goes to the rejected file.  When
        another process is flushing, returns 0 at once (it holds the flush lock).
        """
        stored = 0
        with self._flush_lock() as mine:
            if not mine:
                return 0
            files = self._pending_files()
            for index, path in enumerate(files):
                try:
                    line = path.read_text(encoding="utf-8")
                except FileNotFoundError:
                    continue
                try:
                    self._upsert(normalize_record(json.loads(line)))
                    stored += 1
                except SQLAlchemyError as e:
                    if not refused_for_good(e):
                        self._failed_at = time.monotonic()
                        log.info("call_record_spool_flush_paused", stored=stored, left=len(files) - index,
                                 reason=_reason(e))
                        break
                    self._reject(line, f"{type(e).__name__}: {e.orig or e}")
                except (CallRecordError, ValueError) as e:
                    self._reject(line, f"{type(e).__name__}: {e}")
                path.unlink(missing_ok=True)
            self._spool_bytes = self._scan_bytes()
        if stored:
            log.info("call_record_spool_flushed", stored=stored)
        return stored

    def adopt_legacy_spools(self) -> int:
        """Move records of ``<spool parent>/controller-<pid>`` folders no live process holds into this
        spool, and remove those folders; returns how many records moved."""
        moved = 0
        for folder in sorted(self.spool_dir.parent.glob(self.LEGACY_PREFIX + "*")):
            if not folder.is_dir() or folder.is_symlink():
                continue
            lock = folder / "call-records.lock"
            try:
                with open(lock, "a+") as handle:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)   # its process is gone
                    moved += self._adopt(folder)
            except OSError:
                continue                          # still held by a live controller of the old layout
            for leftover in (lock, folder / "call-records.tmp"):
                leftover.unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError as e:
                log.warning("call_record_legacy_spool_kept", folder=str(folder), reason=str(e))
        if moved:
            log.info("call_record_legacy_spool_adopted", records=moved)
        return moved

    # ---- database ---------------------------------------------------------------------------------

    def _upsert(self, values: dict[str, Any]) -> None:
        dialect = self._engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        if dialect not in ("postgresql", "sqlite"):
            raise CallRecordError(f"call records need SQLite or PostgreSQL, not {dialect}")
        now = utcnow()
        stmt = insert(CallRecord).values(**values, updated_at=now)
        changes = {k: stmt.excluded[k] for k in values if k not in ("call_uuid", "tenant_id")}
        changes["updated_at"] = stmt.excluded["updated_at"]
        stmt = stmt.on_conflict_do_update(
            index_elements=[CallRecord.call_uuid], set_=changes,
            where=CallRecord.tenant_id == stmt.excluded.tenant_id,
        ).returning(CallRecord.id)
        conn = None
        # A server that stops answering mid-query: psycopg waits cooperatively, so a hub deadline
        # (a little after the server-side timeouts) ends the wait; the connection is then discarded.
        deadline = gevent.Timeout(self.write_timeout + 1.0)
        deadline.start()
        try:
            conn = self._engine.connect()
            with conn.begin():
                if dialect == "postgresql":
                    ms = max(1, int(self.write_timeout * 1000))
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                row = conn.execute(stmt).first()
        except gevent.Timeout as t:
            if t is not deadline:
                raise
            if conn is not None:
                conn.invalidate()
            raise WriteTimedOut(self.write_timeout) from None
        finally:
            deadline.cancel()
            if conn is not None:
                conn.close()
        if row is None:
            raise CallRecordError(f"call {values['call_uuid']} is already recorded under another tenant; refused")

    # ---- spool files ------------------------------------------------------------------------------

    def _pending_files(self) -> list[Path]:
        try:
            return sorted(p for p in self.pending_dir.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return []

    def _scan_bytes(self) -> int:
        total = 0
        for path in self._pending_files():
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total

    def _append(self, values: Mapping[str, Any]) -> WriteResult:
        line = _to_json_line(values)
        size = len(line.encode())
        with self._lock:
            if self._spool_bytes + size > self.max_spool_bytes:
                log.error("call_record_spool_full", call_uuid=values["call_uuid"], spool=str(self.spool_dir),
                          size=self._spool_bytes, cap=self.max_spool_bytes)
                return WriteResult.DROPPED
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}.json"
            _write_atomically(self.tmp_dir / name, self.pending_dir / name, line)
            self._spool_bytes += size
        return WriteResult.SPOOLED

    def _adopt(self, folder: Path) -> int:
        moved = 0
        spooled = folder / "call-records.jsonl"
        if spooled.exists():
            for line in spooled.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}.json"
                _write_atomically(self.tmp_dir / name, self.pending_dir / name, line + "\n")
                moved += 1
            spooled.unlink()
        rejected = folder / "call-records.rejected.jsonl"
        if rejected.exists():
            with self._rejected_file() as f:
                f.write(rejected.read_text(encoding="utf-8"))
            rejected.unlink()
        with self._lock:
            self._spool_bytes = self._scan_bytes()
        return moved

    @contextmanager
    def _flush_lock(self) -> Iterator[bool]:
        with open(self.spool_dir / self.FLUSH_LOCK, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                with self._lock:
                    yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def _rejected_file(self) -> Iterator[Any]:
        with open(self.rejected_path, "a", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _reject(self, line: str, reason: str) -> None:
        log.error("call_record_rejected", reason=reason, rejected=str(self.rejected_path))
        entry = json.dumps({"reason": reason, "record": line.strip()}, separators=(",", ":")) + "\n"
        with self._rejected_file() as f:
            f.write(entry)


def _reason(error: SQLAlchemyError) -> str:
    return "timeout" if isinstance(error, WriteTimedOut) else type(error.orig or error).__name__


def _write_atomically(tmp: Path, final: Path, text: str) -> None:
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
