"""In-process local models, loaded once per process and shared by every call and tenant.

``shared_model(key, loader)`` runs ``loader()`` in the model thread pool the first time a
key is asked for; greenlets that ask while it loads wait for the same load (cooperatively,
with a timeout). A failed load is not cached: the next call tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from gevent.event import AsyncResult

from providers.errors import ProviderConfigError, ProviderError, ProviderTimeout
from providers.offload import run_in_thread

T = TypeVar("T")

_models: dict[str, AsyncResult] = {}


def shared_model(key: str, loader: Callable[[], T], *, timeout: float = 120.0, provider: str = "") -> T:
    """The model for ``key``, loading it with ``loader`` if this process has not yet."""
    slot = _models.get(key)
    if slot is None:
        slot = _models[key] = AsyncResult()
        try:
            slot.set(run_in_thread(loader, timeout=timeout, provider=provider))
        except BaseException as e:
            del _models[key]
            slot.set_exception(e if isinstance(e, Exception) else RuntimeError(repr(e)))
            if isinstance(e, ProviderError):
                raise
            if isinstance(e, Exception):
                raise ProviderConfigError(f"cannot load model {key}: {type(e).__name__}: {e}",
                                          provider=provider) from e
            raise
    try:
        value: Any = slot.get(timeout=timeout)
    except ProviderError:
        raise
    except Exception as e:
        if "Timeout" in type(e).__name__:
            raise ProviderTimeout(f"model {key} still loading after {timeout:g}s", provider=provider) from e
        raise ProviderConfigError(f"cannot load model {key}: {e}", provider=provider) from e
    return value


def is_loaded(key: str) -> bool:
    slot = _models.get(key)
    return bool(slot is not None and slot.successful())
