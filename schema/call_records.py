"""Call records: written at the end of (or during) a call, never lost when the database is down.

`CallRecordWriter.write(record)` upserts the record by call UUID.  When the database cannot be
reached (down, locked, unreadable) the record is appended to a JSON-lines spool in `spool_dir`
(flushed and fsync'd); `flush_spool()`, called periodically by the controller, replays the spool
in order once the database is back.  While anything is spooled, new records join the spool too,
so an older version of a record can never overwrite a newer one.  The spool has a size cap: past
it a record is dropped with an error logged (`WriteResult.DROPPED`).  A spooled record the
database refuses for good (say, its tenant was deleted) is moved to ``call-records.rejected.jsonl``
with the reason, never silently discarded.

A call UUID belongs to one tenant: a record arriving with the same UUID under another tenant is
refused, it never overwrites the first tenant's row.  One spool folder serves one process (a lock
file enforces it).
"""

from __future__ import annotations

import datetime as dt
import enum
import fcntl
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from schema.errors import CallRecordError, CallRecordInvalid
from schema.models import CALL_RECORD_FIELDS, CallRecord, utcnow

log = structlog.get_logger(__name__)
DATETIME_FIELDS = ("started_at", "answered_at", "ended_at")
JSON_FIELDS = ("path", "recordings", "turns", "latencies")
DEFAULT_MAX_SPOOL_BYTES = 64 * 1024 * 1024
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


class CallRecordWriter:
    """Upserts call records, spooling them to disk while the database is unreachable."""

    SPOOL = "call-records.jsonl"
    REJECTED = "call-records.rejected.jsonl"
    LOCK = "call-records.lock"

    def __init__(self, engine: Engine, spool_dir: str | Path, *,
                 max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES) -> None:
        self._engine = engine
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.spool_path = self.spool_dir / self.SPOOL
        self.rejected_path = self.spool_dir / self.REJECTED
        self.max_spool_bytes = max_spool_bytes
        self._lock = threading.RLock()  # around spool file operations and the "pending" state
        self._lock_file = open(self.spool_dir / self.LOCK, "a+")  # noqa: SIM115 (held until close())
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._lock_file.close()
            raise CallRecordError(f"spool folder {self.spool_dir} is in use by another process") from e

    def close(self) -> None:
        if not self._lock_file.closed:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()

    def __enter__(self) -> CallRecordWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- public -----------------------------------------------------------------------------------

    def pending(self) -> int:
        """How many records wait in the spool."""
        with self._lock:
            return len(self._read_spool())

    def write(self, record: Mapping[str, Any]) -> WriteResult:
        """Store `record` (upsert by call_uuid), or spool it if the database is unreachable."""
        values = normalize_record(record)
        with self._lock:
            if self._spool_has_lines():
                result = self._append(values)
                self.flush_spool()
                return result
        try:
            self._upsert(values)
            return WriteResult.STORED
        except SQLAlchemyError as e:
            if refused_for_good(e):
                raise CallRecordError(f"call record {values['call_uuid']} refused: {e.orig or e}") from e
            log.warning("call_record_spooled", call_uuid=values["call_uuid"], reason=type(e).__name__)
        with self._lock:
            return self._append(values)

    def flush_spool(self) -> int:
        """Replay the spool into the database in order; returns how many records were stored.

        Stops at the first error that is the database's state (down, locked…), keeping that record
        and the rest; a record the database refuses for good goes to the rejected file.
        """
        stored = 0
        with self._lock:
            lines = self._read_spool()
            if not lines:
                return 0
            done = 0
            for line in lines:
                try:
                    values = normalize_record(json.loads(line))
                    self._upsert(values)
                    stored += 1
                except SQLAlchemyError as e:
                    if not refused_for_good(e):
                        log.info("call_record_spool_flush_paused", stored=stored, left=len(lines) - done,
                                 reason=type(e).__name__)
                        break
                    self._reject(line, f"{type(e).__name__}: {e.orig or e}")
                except (CallRecordError, ValueError) as e:
                    self._reject(line, f"{type(e).__name__}: {e}")
                done += 1
            self._rewrite_spool(lines[done:])
        if stored:
            log.info("call_record_spool_flushed", stored=stored)
        return stored

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
        with self._engine.begin() as conn:
            if conn.execute(stmt).first() is None:
                raise CallRecordError(
                    f"call {values['call_uuid']} is already recorded under another tenant; refused")

    # ---- spool file -------------------------------------------------------------------------------

    def _spool_has_lines(self) -> bool:
        try:
            return self.spool_path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _read_spool(self) -> list[str]:
        try:
            text = self.spool_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line + "\n" for line in text.splitlines() if line.strip()]

    def _append(self, values: Mapping[str, Any]) -> WriteResult:
        line = _to_json_line(values)
        size = self.spool_path.stat().st_size if self.spool_path.exists() else 0
        if size + len(line.encode()) > self.max_spool_bytes:
            log.error("call_record_spool_full", call_uuid=values["call_uuid"], spool=str(self.spool_path),
                      size=size, cap=self.max_spool_bytes)
            return WriteResult.DROPPED
        _append_synced(self.spool_path, line)
        return WriteResult.SPOOLED

    def _rewrite_spool(self, lines: list[str]) -> None:
        if not lines:
            self.spool_path.unlink(missing_ok=True)
            return
        tmp = self.spool_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.spool_path)
        _fsync_dir(self.spool_dir)

    def _reject(self, line: str, reason: str) -> None:
        log.error("call_record_rejected", reason=reason, rejected=str(self.rejected_path))
        entry = json.dumps({"reason": reason, "record": line.strip()}, separators=(",", ":")) + "\n"
        _append_synced(self.rejected_path, entry)


def _append_synced(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
