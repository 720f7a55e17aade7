"""In-process local models, loaded once per process and shared by every call and tenant.

``shared_model(key, loader)`` runs ``loader()`` in the model thread pool the first time a
key is asked for; greenlets that ask while it loads wait for the same load (cooperatively,
with a timeout). A failed load is not cached: the next call tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent.event import AsyncResult

from providers.errors import ProviderConfigError, ProviderError, ProviderTimeout
from providers.offload import run_in_thread

T = TypeVar("T")

_models: dict[str, AsyncResult] = {}


def shared_model(key: str, loader: Callable[[], T], *, timeout: float = 120.0, provider: str = "") -> T:
    """The model for ``key``, loading it with ``loader`` if this process has not yet.

    The load runs in a greenlet of its own, not in the caller's: a caller that gives up (its own,
    shorter deadline) leaves the load going, and the next caller gets the model or waits for the
    rest of the same load. Waiting uses ``wait`` (no exception of its own), so a caller's outer
    ``gevent.Timeout`` reaches it as itself, never as this function's "still loading"."""
    slot = _models.get(key)
    if slot is None:
        slot = _models[key] = AsyncResult()
        gevent.spawn(_load, key, slot, loader, timeout, provider)
    slot.wait(timeout=timeout)
    if not slot.ready():
        raise ProviderTimeout(f"model {key} still loading after {timeout:g}s", provider=provider)
    value: Any = slot.get()
    return value


def _load(key: str, slot: AsyncResult, loader: Callable[[], Any], timeout: float, provider: str) -> None:
    try:
        slot.set(run_in_thread(loader, timeout=timeout, provider=provider))
    except ProviderError as e:
        _models.pop(key, None)            # not cached: the next call tries again
        slot.set_exception(e)
    except Exception as e:
        _models.pop(key, None)
        slot.set_exception(ProviderConfigError(f"cannot load model {key}: {type(e).__name__}: {e}",
                                               provider=provider))


def is_loaded(key: str) -> bool:
    slot = _models.get(key)
    return bool(slot is not None and slot.successful())
