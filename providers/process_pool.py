"""Worker processes for model code that holds the GIL (pocketsphinx) or may crash.

Why not ``concurrent.futures.ProcessPoolExecutor``: a running task cannot be cancelled,
so one decode that hangs would occupy a worker forever, and its manager thread waits in
``multiprocessing.connection.wait`` whose behaviour depends on whether gevent patched
``select`` first; and multiprocessing's *spawn* re-imports the parent's ``__main__``.
Here each worker is a fresh interpreter (``python -m providers.process_pool``) with two
pipes; the caller writes the pickled job and reads the reply on non-blocking pipe ends with
``gevent.socket.wait_write``/``wait_read`` (a large job never holds the hub while the pipe drains)
(cooperative whether or not the process is monkey-patched, and with a timeout). A worker
that overruns its deadline or dies (pocketsphinx segfaults on some bad input) is killed and
replaced; the caller gets ``ProviderTimeout`` / ``ProviderUnavailable`` (both retryable). A
Python exception inside the job is ``ProviderBadResponse`` (not retryable; traceback logged).

A job is ``"module:function"`` plus picklable arguments, run inside the worker, where the
module may keep loaded models in a module-level cache: models load once per worker
process and are shared by every call that lands there.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import gevent
import structlog
from gevent.lock import BoundedSemaphore
from gevent.queue import Empty, Queue
from gevent.socket import wait_read, wait_write

from providers.errors import ProviderBadResponse, ProviderError, ProviderTimeout, ProviderUnavailable

log = structlog.get_logger(__name__)

_targets: dict[str, Callable[..., Any]] = {}


def _resolve(target: str) -> Callable[..., Any]:
    fn = _targets.get(target)
    if fn is None:
        module, _, attr = target.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        _targets[target] = fn
    return fn


def _worker_main(receiver: Connection, sender: Connection) -> None:
    """The worker process: run jobs from the pipe until told to stop or the pipe closes."""
    conn = sender
    while True:
        try:
            job = receiver.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        target, args, kwargs = job
        try:
            reply: tuple[str, Any] = ("ok", _resolve(target)(*args, **kwargs))
        except ProviderError as e:
            reply = ("error", e)
        except Exception as e:
            reply = ("crash", (f"{type(e).__name__}: {e}"[:300], traceback.format_exc(limit=8)))
        try:
            conn.send(reply)
        except Exception as e:  # the result did not pickle
            conn.send(("crash", (f"unpicklable result: {e}"[:300], "")))


def _send_message(fd: int, obj: Any, deadline: float, late: Exception) -> None:
    """``Connection.send``'s framing, written cooperatively to a non-blocking pipe."""
    data = ForkingPickler.dumps(obj)
    size = len(data)
    header = struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", size)
    view = memoryview(header + bytes(data))
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            wait_write(fd, timeout=max(0.0, deadline - time.monotonic()), timeout_exc=late)
            continue
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float, late: Exception) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        try:
            chunk = os.read(fd, min(size - len(buf), 1 << 20))
        except BlockingIOError:
            wait_read(fd, timeout=max(0.0, deadline - time.monotonic()), timeout_exc=late)
            continue
        if not chunk:
            raise EOFError("worker pipe closed")
        buf += chunk
    return bytes(buf)


def _recv_message(fd: int, deadline: float, late: Exception) -> Any:
    """``Connection.recv``'s framing, read cooperatively from a non-blocking pipe."""
    (size,) = struct.unpack("!i", _read_exact(fd, 4, deadline, late))
    if size == -1:
        (size,) = struct.unpack("!Q", _read_exact(fd, 8, deadline, late))
    return pickle.loads(_read_exact(fd, size, deadline, late))


PREPARE_SECONDS = 120.0   # the warm-up jobs of a new worker (loading a model) get this long


class _Worker:
    """One worker: ``python -m providers.process_pool R W`` with two pipes.

    A fresh interpreter (like multiprocessing's *spawn*, but without re-importing the
    parent's ``__main__``, which would re-run a script that has no ``__main__`` guard).
    """

    def __init__(self, name: str) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "providers.process_pool", str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), env=env, stdin=subprocess.DEVNULL)
        except BaseException:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise
        os.close(to_child_r)
        os.close(from_child_w)
        self.name = name
        self.pid = self.process.pid
        self.sender = Connection(to_child_w, readable=False)
        self.receiver = Connection(from_child_r, writable=False)
        # Our ends never block: a large job or answer (a flow's text, its validated data) goes
        # through the pipe while other greenlets run (see `_send_message` / `_recv_message`).
        os.set_blocking(to_child_w, False)
        os.set_blocking(from_child_r, False)
        self.warmed: set[Any] = set()     # the pool's warm-up jobs this process has run

    def exitcode(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        for conn in (self.sender, self.receiver):
            try:
                conn.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, wait: float = 2.0) -> None:
        try:
            self.sender.send(None)
            self.process.wait(timeout=wait)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class WorkerPool:
    """A fixed number of spawned worker processes, started lazily, shared by greenlets."""

    def __init__(self, name: str, size: int = 1) -> None:
        self.name = name
        self.size = max(1, size)
        self._idle: Queue[_Worker] = Queue()
        self._started = 0
        self._start_lock = BoundedSemaphore(1)
        self._closed = False
        self._pid = os.getpid()
        self._warm_jobs: dict[Any, tuple[str, tuple[Any, ...], dict[str, Any]]] = {}

    def _take(self, timeout: float) -> _Worker:
        """A worker that has run the pool's warm-up jobs. A new (or replacing) worker is prepared in
        a greenlet of its own with the warm-up's budget (`PREPARE_SECONDS`), not the caller's: a
        caller that cannot wait (a stream's ``lease(timeout=0)``) gets `ProviderTimeout` and the
        worker joins the idle ones when it is ready — it used to be killed for missing the
        caller's deadline, so after a worker died no stream could ever lease its replacement."""
        deadline = time.monotonic() + timeout
        worker = self._take_raw(timeout)
        if all(key in worker.warmed for key in self._warm_jobs):
            return worker
        job = gevent.spawn(self._prepare, worker, time.monotonic() + PREPARE_SECONDS)
        job.join(timeout=max(0.0, deadline - time.monotonic()))
        if job.ready():
            if not job.successful():
                raise job.exception or ProviderUnavailable(f"{self.name} worker could not be prepared")
            return worker
        job.link_value(lambda _: self._idle.put(worker) if worker.exitcode() is None else None)
        raise ProviderTimeout(f"a {self.name} worker is still loading its model")

    def _take_raw(self, timeout: float) -> _Worker:
        try:
            return self._idle.get(block=False)
        except Empty:
            pass
        new = self._start_one()
        if new is not None:
            return new
        try:
            return self._idle.get(timeout=timeout)
        except Empty:
            raise ProviderTimeout(f"all {self.size} {self.name} workers busy for {timeout:g}s") from None

    def _start_one(self) -> _Worker | None:
        with self._start_lock:
            if self._started >= self.size:
                return None
            self._started += 1
            try:
                return _Worker(f"{self.name}-worker")
            except BaseException:
                self._started -= 1
                raise

    def _prepare(self, worker: _Worker, deadline: float) -> None:
        """Run the pool's warm-up jobs this worker has not run yet (a worker started or replaced after
        a `broadcast` loads the model before its first job, not in the middle of a caller's)."""
        for key, (target, args, kwargs) in list(self._warm_jobs.items()):
            if key in worker.warmed:
                continue
            try:
                self._run_on(worker, target, args, kwargs, deadline, keep=True)
            except ProviderBadResponse:
                pass            # the job itself failed (logged): the caller's job will say why, not loop on it
            worker.warmed.add(key)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        self._started -= 1

    def call(self, target: str, *args: Any, timeout: float, **kwargs: Any) -> Any:
        """Run ``target(*args, **kwargs)`` in a worker; wait cooperatively at most ``timeout``."""
        if self._closed:
            raise ProviderUnavailable(f"{self.name} worker pool is closed")
        deadline = time.monotonic() + timeout
        worker = self._take(timeout)
        return self._run_on(worker, target, args, kwargs, deadline)

    def lease(self, timeout: float) -> WorkerLease:
        """One worker for the caller alone until `WorkerLease.release` (a job with state across calls,
        like a streaming decoder); `ProviderTimeout` if none is free within `timeout`."""
        if self._closed:
            raise ProviderUnavailable(f"{self.name} worker pool is closed")
        # Not `_take`: a worker that still has to run the warm-up jobs runs them as the lease's first
        # job (the holder's work waits behind them on that worker), so a caller who cannot wait
        # still gets a worker of its own at once, even right after one died.
        return WorkerLease(self, self._take_raw(timeout))

    def _run_on(self, worker: _Worker, target: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                deadline: float, *, keep: bool = False) -> Any:
        timeout = max(0.0, deadline - time.monotonic())
        late = ProviderTimeout(f"{self.name} worker did not answer within {timeout:.3g}s")
        try:
            _send_message(worker.sender.fileno(), (target, args, kwargs), deadline, late)
            kind, value = _recv_message(worker.receiver.fileno(), deadline, late)
        except ProviderTimeout:
            log.warning("worker.killed", pool=self.name, reason="timeout", pid=worker.pid)
            self._discard(worker)
            raise
        except (EOFError, OSError) as e:
            log.warning("worker.died", pool=self.name, pid=worker.pid, exitcode=worker.exitcode())
            self._discard(worker)
            raise ProviderUnavailable(f"{self.name} worker process died") from e
        except BaseException:
            self._discard(worker)  # interrupted mid-job (e.g. a gevent.Timeout): state unknown
            raise
        if not keep:
            self._idle.put(worker)
        if kind == "ok":
            return value
        if kind == "error":
            raise value
        summary, trace = value
        log.error("worker.job_failed", pool=self.name, target=target, error=summary, traceback=trace)
        raise ProviderBadResponse(f"{self.name} model failed: {summary}")

    def broadcast(self, target: str, *args: Any, timeout: float, **kwargs: Any) -> None:
        """Run the job once in every worker (starting them): used to pre-load models.

        The job becomes one of the pool's warm-up jobs: workers started later run it before their
        first job. It never holds more than one worker at a time, so concurrent broadcasts (every
        call's warm-up, before `providers.readiness`) cannot deadlock each other holding a worker
        each, and callers keep getting the workers that are ready; a broadcast whose job every
        worker already ran returns at once.
        """
        key = (target, args, tuple(sorted(kwargs.items())))
        self._warm_jobs.setdefault(key, (target, args, kwargs))
        deadline = time.monotonic() + timeout
        for _ in range(self.size):
            worker = self._idle_lacking(key) or self._start_one()
            if worker is None:
                return          # the others are busy (or warming): they run it before their next job
            try:
                self._prepare(worker, deadline)
            except BaseException:
                if worker.exitcode() is None and not worker.receiver.closed:
                    self._idle.put(worker)
                raise
            self._idle.put(worker)

    def _idle_lacking(self, key: Any) -> _Worker | None:
        """An idle worker that has not run warm-up job `key` (the others go back as they were)."""
        found: _Worker | None = None
        kept: list[_Worker] = []
        while True:
            try:
                worker = self._idle.get(block=False)
            except Empty:
                break
            if found is None and key not in worker.warmed:
                found = worker
            else:
                kept.append(worker)
        for worker in kept:
            self._idle.put(worker)
        return found

    def close(self) -> None:
        self._closed = True
        if os.getpid() != self._pid:
            return
        while True:
            try:
                self._idle.get(block=False).stop()
            except Empty:
                break


class WorkerLease:
    """A worker taken from its pool by one caller: jobs run on it, one at a time, in order.

    A job that times out or dies discards the worker (as in `WorkerPool.call`); later calls
    raise `ProviderUnavailable`. `release` gives a healthy worker back to the pool.
    """

    def __init__(self, pool: WorkerPool, worker: _Worker) -> None:
        self.pool = pool
        self.worker: _Worker | None = worker
        self._lock = BoundedSemaphore(1)

    def call(self, target: str, *args: Any, timeout: float, **kwargs: Any) -> Any:
        deadline = time.monotonic() + timeout
        with self._lock:
            worker = self.worker
            if worker is None:
                raise ProviderUnavailable(f"{self.pool.name} worker lease was lost or released")
            try:
                if not all(key in worker.warmed for key in self.pool._warm_jobs):
                    self.pool._prepare(worker, max(deadline, time.monotonic() + PREPARE_SECONDS))
                return self.pool._run_on(worker, target, args, kwargs, deadline, keep=True)
            except (ProviderTimeout, ProviderUnavailable):
                self.worker = None   # discarded by _run_on
                raise
            except ProviderError:
                raise                # the job failed; the worker is fine
            except BaseException:
                self.worker = None   # interrupted mid-job: discarded by _run_on
                raise

    def release(self) -> None:
        worker, self.worker = self.worker, None
        if worker is None:
            return
        if self.pool._closed:
            worker.stop()
        else:
            self.pool._idle.put(worker)


_pools: dict[str, WorkerPool] = {}
_pools_lock = threading.Lock()


def worker_pool(name: str, size: int | None = None) -> WorkerPool:
    """The process-wide pool called ``name`` (created on first use)."""
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None or pool._closed:
            n = size or int(os.environ.get("IVR_MODEL_PROCESSES", "0")) or min(2, os.cpu_count() or 1)
            pool = _pools[name] = WorkerPool(name, n)
        return pool


@atexit.register
def _close_pools() -> None:
    for pool in list(_pools.values()):
        pool.close()


if __name__ == "__main__":
    _worker_main(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
