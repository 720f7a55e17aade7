"""Warm-up never holds a caller, never outlives its purpose, never exhausts a worker pool.

Findings: per-call warm-up greenlets outlived their calls (250 after ~130 short calls, each dying
with an unhandled ``ProviderTimeout`` traceback); for about a minute after start-up a connecting
call waited 3.0 s (``all 2 pocketsphinx-stream workers busy for 56–58s``): concurrent warm-up
broadcasts each held a worker while waiting for the other one.
"""

from __future__ import annotations

from typing import ClassVar

import gevent
import pytest
from gevent.event import Event

from esl_controller.tenant_services import warm_call_path
from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderTimeout
from providers.fallback import FallbackTTS
from providers.process_pool import WorkerPool
from providers.readiness import ensure_warm, is_loading, is_ready, status
from providers.tts.base import TTSProvider, TTSSettings


class _SlowModel(TTSProvider):
    """A TTS whose model takes until `loaded` is set to load."""

    name: ClassVar[str] = "slow-model"
    settings_model: ClassVar[type[ProviderSettings]] = TTSSettings

    def _configure(self) -> None:
        self.loads = 0
        self.release = Event()
        self.fail_with: Exception | None = None

    def warm_up(self) -> None:
        self.loads += 1
        self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with

    def _synthesize(self, text: str, *, voice: str | None, language: str | None, timeout: float) -> AudioClip:
        return AudioClip(b"\x00\x00" * 80, 8000)


class _Ready(_SlowModel):
    name: ClassVar[str] = "ready-model"

    def warm_up(self) -> None:   # nothing to load
        return None


class _Set:
    def __init__(self, tts: FallbackTTS, stt: FallbackTTS) -> None:
        self.tts, self.stt = tts, stt

    def warm_call_path(self) -> None:
        from providers.tenant_set import TenantProviders

        TenantProviders.warm_call_path(self)  # type: ignore[arg-type]


def test_a_hundred_connecting_calls_share_one_warm_up_and_none_waits() -> None:
    slow = _SlowModel()
    providers = _Set(FallbackTTS([slow]), FallbackTTS([_Ready()]))
    for _ in range(100):
        warm_call_path(providers)               # returns at once: nothing to wait for
        assert is_loading(slow)
    gevent.sleep(0.01)
    assert slow.loads == 1                      # one warm-up, not one per call
    slow.release.set()
    job = ensure_warm(slow)
    if job is not None:
        job.join(timeout=5)
    assert is_ready(slow) and not is_loading(slow) and status(slow) == "ok"
    assert ensure_warm(slow) is None            # nothing left running, nothing started again


def test_a_failed_warm_up_is_one_log_line_and_is_retried_later() -> None:
    slow = _SlowModel()
    slow.fail_with = ProviderTimeout("all 2 pocketsphinx-stream workers busy for 60s", provider="stt:x")
    slow.release.set()
    errors: list[object] = []
    hub = gevent.get_hub()
    original = hub.handle_error
    hub.handle_error = lambda *args: errors.append(args)   # an unhandled greenlet error would land here
    try:
        job = ensure_warm(slow)
        assert job is not None
        job.join(timeout=5)
    finally:
        hub.handle_error = original
    assert job.successful() and job.value is False and errors == []
    assert "ProviderTimeout" in status(slow) and not is_ready(slow)
    slow.fail_with = None
    again = ensure_warm(slow)
    assert again is not None and again is not job
    again.join(timeout=5)
    assert is_ready(slow) and slow.loads == 2


def test_a_loading_primary_is_skipped_while_the_next_provider_can_serve() -> None:
    slow, ready = _SlowModel(), _Ready()
    chain = FallbackTTS([slow, ready])
    ensure_warm(slow)
    clip = chain.synthesize("hello")
    assert clip.attempts[0].provider == slow.label and clip.attempts[0].error == "Loading"
    assert clip.attempts[-1].provider == ready.label and clip.attempts[-1].ok
    slow.release.set()
    gevent.sleep(0.01)
    assert chain.synthesize("hello").attempts[0].provider == slow.label   # loaded: the primary serves again


def test_a_loading_provider_with_nothing_after_it_is_still_used() -> None:
    slow = _SlowModel()
    chain = FallbackTTS([slow])
    ensure_warm(slow)
    assert chain.synthesize("hello").attempts[-1].ok     # it loads on first use, as before
    slow.release.set()


@pytest.fixture()
def pool() -> WorkerPool:
    pool = WorkerPool("test-warm", size=2)
    yield pool
    pool.close()


def test_concurrent_broadcasts_never_hold_every_worker(pool: WorkerPool) -> None:
    pool.call("math:sqrt", 4.0, timeout=30)          # start the processes once
    jobs = [gevent.spawn(pool.broadcast, "time:sleep", 0.3, timeout=20) for _ in range(10)]
    # A caller's job is served while the warm-ups run (the old broadcast took every worker, and two
    # of them waiting for each other's worker kept both busy until their deadline).
    assert pool.call("math:sqrt", 9.0, timeout=20) == 3.0
    gevent.joinall(jobs, timeout=30)
    assert all(job.successful() for job in jobs), [job.exception for job in jobs]
    assert pool._started == 2


def test_a_worker_started_after_the_broadcast_runs_the_warm_up_first(pool: WorkerPool) -> None:
    pool.broadcast("os:getpid", timeout=30)
    first = {pool.call("os:getpid", timeout=30) for _ in range(4)}
    assert len(first) >= 1
    lease = pool.lease(timeout=30)
    worker = lease.worker
    assert worker is not None and ("os:getpid", (), ()) in worker.warmed
    lease.release()
