"""The task queue: huey, with `SqliteHuey` as the embedded default and `RedisHuey` for several machines.

`MessageQueue(url)` opens huey's storage for ``sqlite:///PATH`` or ``redis://HOST:PORT/DB`` and
declares the one task, ``whatsapp.process_message(message_id, correlation_id)``. The web service
only enqueues; a worker process installs the handler (`MessageQueue.serve`) and runs huey's
consumer with greenlet workers (`run_consumer`).

huey hands a task to a worker by taking it off the queue: a worker killed mid-task takes its task
with it. The database is the source of truth instead: every message is stored before it is queued,
workers claim it under a lease, and `whatsapp.recovery` queues again whatever was left behind;
a task that runs twice does nothing the second time (`WhatsAppStore.claim`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from huey import Huey, RedisHuey, SqliteHuey
from huey.exceptions import RetryTask

from whatsapp.errors import ConfigError

log = structlog.get_logger(__name__)
TASK_NAME = "whatsapp.process_message"

Handler = Callable[[int, str], float | None]   # -> None, or a delay: try again then


def open_huey(url: str, *, name: str = "ivr-whatsapp") -> Huey:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False, blocking=True, read_timeout=1)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        # fsync=False (synchronous=OFF): the queue file is not the record of a message — the database
        # row written before the webhook answers is, and the recovery sweep queues again what a
        # crash lost — so the acknowledgement waits for one fsync, not two.
        return SqliteHuey(name, filename=str(path), results=False, timeout=5, fsync=False)
    raise ConfigError(f"IVR_WHATSAPP_QUEUE must be sqlite:///PATH or redis://HOST:PORT/DB, not {url.split(':')[0]}:…")


class MessageQueue:
    def __init__(self, url: str, *, name: str = "ivr-whatsapp", huey: Huey | None = None) -> None:
        self.url = url
        self.huey = huey or open_huey(url, name=name)
        self._handler: Handler | None = None
        self._task = self.huey.task(name=TASK_NAME)(self._run)

    def _run(self, message_id: int, correlation_id: str) -> None:
        if self._handler is None:
            raise RuntimeError("this process has no WhatsApp message handler (only workers run tasks)")
        delay = self._handler(message_id, correlation_id)
        if delay is not None:
            raise RetryTask(delay=max(0.0, delay))   # huey schedules it again after `delay`

    def serve(self, handler: Handler) -> None:
        """Run `handler` for this process's tasks (a worker)."""
        self._handler = handler

    def enqueue(self, message_id: int, correlation_id: str) -> None:
        self._task(message_id, correlation_id)

    def pending(self) -> int:
        return int(self.huey.pending_count())

    def scheduled(self) -> int:
        return int(self.huey.scheduled_count())

    def flush(self) -> None:
        self.huey.flush()


def run_consumer(queue: MessageQueue, *, workers: int, **options: Any) -> Any:
    """huey's consumer with greenlet workers (the process is monkey-patched), short polling delays so
    an idle SQLite queue answers a new message within a quarter second."""
    consumer = queue.huey.create_consumer(workers=workers, worker_type="greenlet", periodic=False,
                                          initial_delay=0.02, backoff=1.3, max_delay=0.25,
                                          scheduler_interval=options.pop("scheduler_interval", 1),
                                          check_worker_health=True, graceful_signal="TERM", **options)
    return consumer
