"""A bounded native thread pool for model inference that releases the GIL.

onnxruntime (piper), torch (sentence-transformers) and vosk's Kaldi (through cffi) drop
the GIL while they compute, so running them in a real thread keeps the gevent hub free
to serve other calls. The pool is small (``IVR_MODEL_THREADS``, default: the CPU count)
so 50 concurrent calls queue for the cores instead of thrashing them.

Code that *holds* the GIL (pocketsphinx) must not come here: it stalls the hub even from
a thread. It goes to ``providers.process_pool``.

Every wait has a timeout; the caller's greenlet waits cooperatively. A job that overruns
its deadline keeps its thread until it finishes (threads cannot be killed), and the caller
gets ``ProviderTimeout`` at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from gevent.threadpool import ThreadPool

from providers.errors import ProviderTimeout

T = TypeVar("T")

_pool: ThreadPool | None = None
_pool_lock = threading.Lock()


def model_threads() -> ThreadPool:
    """The process-wide model thread pool (created on first use, in the hub's thread)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            size = int(os.environ.get("IVR_MODEL_THREADS", "0")) or (os.cpu_count() or 2)
            _pool = ThreadPool(maxsize=max(1, size))
        return _pool


def run_in_thread(fn: Callable[..., T], *args: Any, timeout: float, provider: str = "") -> T:
    """Run ``fn(*args)`` in the model thread pool; wait cooperatively at most ``timeout``.

    Only this function's own deadline becomes its `ProviderTimeout`; a caller's outer
    ``gevent.Timeout`` that fires while we wait goes on up as itself (it used to be reported as
    "did not finish within <this timeout>", a deadline that had not passed)."""
    result = model_threads().spawn(fn, *args)
    result.wait(timeout=timeout)
    if not result.ready():
        raise ProviderTimeout(f"model did not finish within {timeout:g}s", provider=provider)
    return result.get()
