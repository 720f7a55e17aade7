"""Queueing again what a killed worker, a lost task or an unreachable queue left behind.

Every message is in the database before it is queued; `Sweeper` looks, every ``sweep_every``
seconds, for messages that nobody is working on although they should be (`WhatsAppStore.stale`:
queued long ago, due for a retry long ago, or held under an expired lease) and queues them again.
A message queued twice is handled once (`WhatsAppStore.claim`), and its parts already sent are
not sent again; a message waiting in a long backlog is queued again at most once per
``requeue_after`` (it is touched when queued again).
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import structlog

from whatsapp import metrics
from whatsapp.store import WhatsAppStore

log = structlog.get_logger("ivr.whatsapp.recovery")


class Sweeper:
    def __init__(self, store: WhatsAppStore, enqueue: Callable[[int, str], None], *, every: float,
                 requeue_after: float) -> None:
        self.store = store
        self.enqueue = enqueue
        self.every = every
        self.requeue_after = requeue_after
        self._greenlet: gevent.Greenlet | None = None

    def sweep(self) -> int:
        stale = self.store.stale(requeue_after=self.requeue_after)
        for message_id, correlation_id in stale:
            self.enqueue(message_id, correlation_id)
        # A long backlog looks stale too: queue each message again at most once per `requeue_after`.
        self.store.touch([message_id for message_id, _ in stale])
        count = len(stale)
        if count:
            metrics.REQUEUED.inc(count)
            log.warning("whatsapp.requeued", count=count)
        return count

    def _loop(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception as e:   # the database or the queue is away: next round
                log.warning("whatsapp.sweep_failed", error=type(e).__name__)
            gevent.sleep(self.every)

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
