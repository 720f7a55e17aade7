"""Worker processes for GIL-holding models: results, deadlines (the worker is killed and
replaced), crashes, broadcast warm-up, and the hub staying free while a worker computes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import gevent
import pytest

from providers.errors import ProviderBadResponse, ProviderTimeout, ProviderUnavailable
from providers.offload import run_in_thread
from providers.process_pool import WorkerPool


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    p = WorkerPool("test", size=1)
    try:
        yield p
    finally:
        p.close()


def test_job_runs_in_another_process(pool: WorkerPool) -> None:
    assert pool.call("math:sqrt", 16.0, timeout=30) == 4.0
    pid = pool.call("os:getpid", timeout=30)
    assert pid != os.getpid() and pool.call("os:getpid", timeout=30) == pid      # reused, not respawned


def test_overrunning_job_is_killed_and_replaced(pool: WorkerPool) -> None:
    first = pool.call("os:getpid", timeout=30)
    with pytest.raises(ProviderTimeout):
        pool.call("time:sleep", 30, timeout=0.3)
    second = pool.call("os:getpid", timeout=30)
    assert second != first
    with pytest.raises(OSError):
        os.kill(first, 0)        # the stuck worker is gone


def test_a_crashing_worker_is_unavailable_then_replaced(pool: WorkerPool) -> None:
    with pytest.raises(ProviderUnavailable, match="died"):
        pool.call("os:_exit", 3, timeout=30)
    with pytest.raises(ProviderBadResponse, match="JSONDecodeError"):
        pool.call("json:loads", "{not json", timeout=30)
    assert pool.call("math:floor", 2.5, timeout=30) == 2


def test_broadcast_reaches_every_worker() -> None:
    pool = WorkerPool("test-broadcast", size=2)
    try:
        pool.broadcast("math:sqrt", 4.0, timeout=30)
        assert pool._started == 2 and pool._idle.qsize() == 2
    finally:
        pool.close()


def test_hub_is_free_while_a_worker_computes(pool: WorkerPool) -> None:
    pool.call("math:sqrt", 1.0, timeout=30)        # start the worker first
    ticks: list[float] = []
    ticker = gevent.spawn(lambda: [ticks.append(time.perf_counter()) or gevent.sleep(0.01) for _ in range(1000)])
    started = time.perf_counter()
    pool.call("time:sleep", 0.5, timeout=30)
    took = time.perf_counter() - started
    ticker.kill()
    during = [t for t in ticks if started <= t <= started + took]
    assert len(during) > 10          # the hub ran other greenlets while we waited


def test_thread_offload_times_out_cooperatively() -> None:
    with pytest.raises(ProviderTimeout):
        run_in_thread(time.sleep, 1.0, timeout=0.05)
    assert run_in_thread(sum, [1, 2, 3], timeout=5) == 6


def test_a_replacement_worker_still_warming_up_is_not_killed_for_an_impatient_caller(pool: WorkerPool) -> None:
    """Seen after the warm-up rework: a new worker was prepared against the caller's deadline, so a
    caller that could not wait (a stream's lease, timeout 0) killed it, and the next one too."""
    pool.broadcast("time:sleep", 0.5, timeout=30)          # the pool's warm-up job: 0.5 s per worker
    first = pool.call("os:getpid", timeout=30)
    with pytest.raises(ProviderUnavailable):
        pool.call("os:_exit", 3, timeout=30)                 # the worker dies
    with pytest.raises(ProviderTimeout, match="still loading"):
        pool.call("os:getpid", timeout=0.05)                 # its replacement is warming up
    second = pool.call("os:getpid", timeout=30)              # ... and serves once it is ready
    assert second != first and pool.call("os:getpid", timeout=30) == second
    lease = pool.lease(timeout=0.0)                          # a lease never waits: the warm-up runs first on it
    try:
        assert lease.call("os:getpid", timeout=30) == second
    finally:
        lease.release()
