"""Wiring the channel's parts for a process: the web service (`web_runtime`) or a worker (`worker_runtime`).

Both open the database (``IVR_DATABASE_URL``) and the queue (``IVR_WHATSAPP_QUEUE``) from the
same `ChannelSettings`, so every process of a deployment agrees on where things are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

from schema.database import default_url, make_engine, make_session_factory
from whatsapp.processing import MessageProcessor
from whatsapp.queue import MessageQueue, run_consumer
from whatsapp.rate_limits import RateLimits
from whatsapp.recovery import Sweeper
from whatsapp.secretaries import SecretaryBook
from whatsapp.settings import ChannelSettings
from whatsapp.store import WhatsAppStore


@dataclass
class Runtime:
    settings: ChannelSettings
    engine: Engine
    store: WhatsAppStore
    queue: MessageQueue
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.engine.dispose()


def channel_engine(database_url: str | None = None, *, busy_timeout: float = 5.0) -> Engine:
    """The database engine of the channel's processes. On SQLite its connections commit with
    ``synchronous=NORMAL`` (WAL): a commit survives a crash of the process, and is not fsynced
    until a checkpoint, so a power cut may lose the last moments. A full fsync per commit held the
    web process's hub ~2 ms for every webhook and capped it near 100 requests/s on this project's
    2-core machine (`benchmarks/whatsapp`). PostgreSQL (cooperative under gevent, server-side group
    commit) keeps full durability: the production choice."""
    engine = make_engine(database_url or default_url(), sqlite_busy_timeout=busy_timeout)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_normal_sync)
    return engine


def _sqlite_normal_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def open_runtime(database_url: str | None = None, settings: ChannelSettings | None = None, *,
                 web: bool = False) -> Runtime:
    """The web service's runtime (`web`) writes without SQLite's busy wait, yielding to other requests
    while the file is locked by a worker (`WhatsAppStore`); workers wait in SQLite (5 s)."""
    settings = settings or ChannelSettings.from_env()
    engine = channel_engine(database_url, busy_timeout=0.0 if web else 5.0)
    store = WhatsAppStore(make_session_factory(engine), yield_on_lock=web and engine.dialect.name == "sqlite")
    return Runtime(settings, engine, store, MessageQueue(settings.queue_url, name=settings.queue_name))


def web_app(runtime: Runtime, *, allow_unsigned: bool = False) -> Any:
    from whatsapp.web import create_app

    s = runtime.settings
    limits = RateLimits(storage=s.limits_storage, sender=s.sender_rate, tenant=s.tenant_rate)
    return create_app(store=runtime.store, engine=runtime.engine, enqueue=runtime.queue.enqueue, settings=s,
                      limits=limits, allow_unsigned=allow_unsigned)


@dataclass
class Worker:
    runtime: Runtime
    processor: MessageProcessor
    sweeper: Sweeper
    consumer: Any

    def run(self) -> None:
        """Until SIGINT/SIGTERM (huey's consumer handles them: running tasks finish first)."""
        self.sweeper.start()
        try:
            self.consumer.run()
        finally:
            self.sweeper.stop()

    def start(self) -> None:
        """Embedded in another process (tests, the benchmark): no signal handlers, returns at once."""
        self.consumer._set_signal_handlers = lambda: None   # the host process owns its signals
        self.consumer.start()
        self.sweeper.start()

    def stop(self) -> None:
        self.sweeper.stop()
        self.consumer.stop(graceful=True)


def worker(runtime: Runtime, *, workers: int = 8) -> Worker:
    s = runtime.settings
    processor = MessageProcessor(runtime.store, s, SecretaryBook(runtime.engine), enqueue=runtime.queue.enqueue)
    runtime.queue.serve(processor.process)
    sweeper = Sweeper(runtime.store, runtime.queue.enqueue, every=s.sweep_every, requeue_after=s.requeue_after)
    return Worker(runtime, processor, sweeper, run_consumer(runtime.queue, workers=workers))
