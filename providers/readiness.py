"""Which providers are ready to serve, and warming them up without ever holding a caller.

Loading a model can take seconds (minutes on a loaded machine). The rules:

- `ensure_warm(provider)` starts the provider's ``warm_up`` in a background greenlet, at most one
  per provider instance at a time (single flight), bounded by a deadline; it never waits. Every
  caller of a tenant shares that one warm-up (before, each call spawned its own, which outlived
  the call and died with an unhandled ``ProviderTimeout`` traceback).
- A warm-up that fails or times out is one warning line (no traceback); the provider is tried
  again at its next use or warm-up, so a model that loads slowly is not given up on.
- `is_loading(provider)`: its warm-up is in flight. A fallback chain skips a provider that is still
  loading when a later one can serve (`providers.fallback.FallbackChain.order`), so the first
  caller after a start hears the next provider (FreeSWITCH's flite in the default TTS chain)
  instead of seconds of silence; a provider with nothing after it is used anyway (it loads on
  first use, as before).
- Providers whose ``warm_up`` is the base class's no-op are always ready.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

import gevent
import structlog

from providers.base import Provider

log = structlog.get_logger(__name__)

DEFAULT_WARM_SECONDS = 120.0


@dataclass(slots=True)
class _Warmth:
    job: gevent.Greenlet | None = None
    ready: bool = False
    failures: int = 0
    last_error: str = ""


_states: weakref.WeakKeyDictionary[Provider, _Warmth] = weakref.WeakKeyDictionary()


def needs_warm_up(provider: Provider) -> bool:
    return type(provider).warm_up is not Provider.warm_up


def _state(provider: Provider) -> _Warmth:
    state = _states.get(provider)
    if state is None:
        state = _states[provider] = _Warmth(ready=not needs_warm_up(provider))
    return state


def is_loading(provider: Provider) -> bool:
    state = _states.get(provider)
    return state is not None and state.job is not None and not state.job.dead


def is_ready(provider: Provider) -> bool:
    return _state(provider).ready


def ensure_warm(provider: Provider, timeout: float = DEFAULT_WARM_SECONDS) -> gevent.Greenlet | None:
    """The provider's warm-up greenlet (started now if none is running and it is not ready yet)."""
    state = _state(provider)
    if state.ready:
        return None
    if state.job is not None and not state.job.dead:
        return state.job
    state.job = gevent.spawn(_warm, provider, state, timeout)
    return state.job


def _warm(provider: Provider, state: _Warmth, timeout: float) -> bool:
    started = time.monotonic()
    try:
        with gevent.Timeout(timeout, TimeoutError(f"warm-up did not finish within {timeout:g}s")):
            provider.warm_up()
    except gevent.GreenletExit:
        raise
    except BaseException as e:      # a provider's bug included: one line, never a traceback
        state.failures += 1
        state.last_error = f"{type(e).__name__}: {str(e)[:200]}"
        log.warning("providers.warm_up_failed", provider=provider.label, error=state.last_error,
                    seconds=round(time.monotonic() - started, 1), failures=state.failures)
        return False
    state.ready = True
    log.info("providers.warm", provider=provider.label, seconds=round(time.monotonic() - started, 2))
    return True


def status(provider: Provider) -> str:
    """"ok", "loading", "cold" or the last warm-up error."""
    state = _state(provider)
    if state.ready:
        return "ok"
    if is_loading(provider):
        return "loading"
    return state.last_error or "cold"
