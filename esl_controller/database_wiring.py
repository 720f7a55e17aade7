"""Wires a controller process to the database: routing, call records, limits and live reload.

* `DatabaseRouting` keeps every tenant's snapshot in memory;
* call records go through `schema.call_records.CallRecordWriter` in a background greenlet
  (a call never waits on the database); each write is bounded in time, and the disk spool
  (``var/spool/call-records``, shared by the controllers of one var folder) keeps records while
  the database is unreachable or hangs; a flusher retries every few seconds, and stopping spools
  whatever could not be written;
* `schema.reload_bus.ReloadListener` hears ``ivr tenants reload`` (PostgreSQL NOTIFY, or this
  process's control socket with SQLite) and answers with the reload's result or its error.

Writes run in the pump's greenlet, not in gevent's thread pool: once monkey-patched, SQLAlchemy's
pool locks and psycopg's waits are gevent primitives, which deadlock when used from a native
thread (seen here: a write stuck for good while PostgreSQL restarted).  psycopg 3 is cooperative
after patching; SQLite writes are short, and the controller's engine has a short busy timeout
(a locked file spools the record instead of stalling the hub).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gevent
import structlog
from gevent.queue import Queue

from esl_controller.call_record import CallRecord, database_row, log_sink
from esl_controller.controller import CallController, ControllerSettings
from esl_controller.database_routing import DatabaseRouting
from esl_controller.watchdog import ProgressWatchdog

log = structlog.get_logger(__name__)


class CallRecordPump:
    """Queues call records and writes them from one greenlet, off the call's path.

    Each write is bounded (`CallRecordWriter.write_timeout`), so a hung database delays the queue by
    that much per record, never for ever; a write that does not finish in time is spooled.  `stop`
    gives the queue ``stop_seconds`` to drain, then spools whatever is left, the record being
    written included: nothing is lost when the controller stops while the database hangs.
    """

    def __init__(self, writer: Any, *, flush_every: float = 5.0, stop_seconds: float = 5.0) -> None:
        self.writer = writer
        self.queue: Queue = Queue()
        self.flush_every = flush_every
        self.stop_seconds = stop_seconds
        self._current: dict[str, Any] | None = None
        self._greenlet = gevent.spawn(self._run)
        self._flusher = gevent.spawn(self._flush_loop)

    def __call__(self, record: CallRecord) -> None:
        log_sink(record)
        if record.tenant_id is None:
            return                       # unknown tenant: logged only (a record needs its tenant)
        self.queue.put(database_row(record))

    def _write(self, row: dict[str, Any]) -> None:
        self._current = row
        try:
            self.writer.write(row)
        except gevent.GreenletExit:
            self._spool(row)             # stopped mid-write: the row must not be lost
            raise
        except Exception:
            log.exception("call_record.write_failed", call_uuid=row.get("call_uuid"))
        finally:
            self._current = None

    def _spool(self, row: dict[str, Any]) -> None:
        try:
            self.writer.spool(row)
        except Exception:
            log.exception("call_record.spool_failed", call_uuid=row.get("call_uuid"))

    def _run(self) -> None:
        while True:
            row = self.queue.get()
            if row is None:
                return
            self._write(row)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(self.flush_every)
            try:
                if self.writer.pending():
                    self.writer.flush_spool()
            except Exception:
                log.exception("call_record.flush_failed")

    def stop(self) -> None:
        self._flusher.kill(block=True, timeout=self.stop_seconds)
        self.queue.put(None)
        self._greenlet.join(timeout=self.stop_seconds)
        if not self._greenlet.dead:
            log.warning("call_record.stop_spooling", queued=self.queue.qsize(), writing=self._current is not None)
            self._greenlet.kill(block=True, timeout=2.0)
        while not self.queue.empty():
            row = self.queue.get_nowait()
            if row is not None:
                self._spool(row)
        self.writer.close()


class _ListenerHandle:
    def __init__(self, listener: Any) -> None:
        self.listener = listener

    def stop(self) -> None:
        self.listener.stop()


def build_database_controller(database_url: str | None, *, settings: ControllerSettings | None = None,
                              watchdog: ProgressWatchdog | None = None, var_dir: Path | str | None = None,
                              services_factory: Any = None) -> tuple[CallController, DatabaseRouting, list[Any]]:
    from schema.call_records import CallRecordWriter
    from schema.database import default_url, make_engine
    from schema.limits import CallLimiter
    from schema.reload_bus import ReloadListener

    # Absolute: FreeSWITCH resolves a relative path against its own sounds folder.
    var_dir = Path(var_dir or os.environ.get("IVR_VAR_DIR", "var")).resolve()
    url = database_url or default_url()
    engine = make_engine(url, sqlite_busy_timeout=0.25, pg_connect_timeout=3)
    if services_factory is None:
        services_factory = _default_services_factory(var_dir, engine)
    routing = DatabaseRouting(engine, prompt_root=var_dir / "prompts", recordings_root=var_dir / "recordings",
                              services_factory=services_factory)
    pump = CallRecordPump(CallRecordWriter(engine, var_dir / "spool" / "call-records"))
    controller = CallController(routing, settings=settings, record_sink=pump, watchdog=watchdog,
                                call_limiter=CallLimiter())
    listener = ReloadListener(url, routing.reload)
    listener.start()
    return controller, routing, [pump, _ListenerHandle(listener)]


def _default_services_factory(var_dir: Path, engine: Any) -> Any:
    from esl_controller.tenant_services import make_services_factory

    return make_services_factory(engine=engine, tts_cache_root=var_dir / "tts-cache",
                                 warm_in_background=os.environ.get("IVR_WARM_PROVIDERS", "1") != "0")
