"""What every provider shares: typed settings, secrets, deadlines and retries, attempts.

A capability base (``providers.stt.base.STTProvider`` …) subclasses ``Provider`` and
declares one abstract method; vendors implement it in one file each. The public method of
the capability calls ``Provider._call``, which

- runs one attempt under a deadline (``settings.timeout``; a ``gevent.Timeout`` that we
  turn into ``ProviderTimeout``, and the same number is handed to the vendor call so its
  socket times out too when the process is not monkey-patched);
- retries only retryable errors (408/429/5xx/timeouts/connection errors), up to
  ``settings.retries`` times with exponential backoff; a 429 whose ``Retry-After`` is
  longer than ``settings.max_retry_wait`` is not waited for: the fallback chain moves on,
  because a caller on the line must not hear dead air.

``Attempt`` records one provider's try (who, how long, which error) for call records.
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import gevent
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.errors import (
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
)

T = TypeVar("T")
log = structlog.get_logger(__name__)


class ProviderSettings(BaseModel):
    """Settings every provider has. Vendors subclass this with their own typed fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(10.0, gt=0, le=600, description="seconds for one attempt")
    retries: int = Field(1, ge=0, le=5, description="extra attempts after a retryable error")
    backoff: float = Field(0.25, ge=0, le=10, description="first retry delay; doubles each time")
    max_retry_wait: float = Field(2.0, ge=0, le=60,
                                  description="longest Retry-After we wait for before falling back")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One provider's try inside a fallback chain (or alone)."""

    provider: str
    ok: bool
    latency_ms: float
    error: str = ""          # the error class name, e.g. "ProviderTimeout"
    detail: str = ""         # its message (never secrets: our messages don't carry them)


def format_validation_error(err: ValidationError) -> str:
    """All problems on one line: ``settings: voice_path: Field required; …``."""
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item.get("loc", ())) or "(settings)"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "settings: " + "; ".join(parts)


class Provider(abc.ABC):
    """Base of every provider: settings parsed and validated once, secrets kept aside."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    settings_model: ClassVar[type[ProviderSettings]] = ProviderSettings
    required_secrets: ClassVar[tuple[str, ...]] = ()

    settings: ProviderSettings

    def __init__(self, settings: ProviderSettings | Mapping[str, Any] | None = None,
                 secrets: Mapping[str, str] | None = None) -> None:
        self.settings = self.parse_settings(settings)
        self._secrets = {k: v for k, v in (secrets or {}).items() if v}
        missing = [s for s in self.required_secrets if s not in self._secrets]
        if missing:
            raise ProviderConfigError(f"missing secret(s): {', '.join(missing)}", provider=self.label)
        self._configure()

    def _configure(self) -> None:
        """Check paths, build clients (no network, no model loading). Default: nothing."""
        return None

    @classmethod
    def parse_settings(cls, settings: ProviderSettings | Mapping[str, Any] | None) -> Any:
        if isinstance(settings, cls.settings_model):
            return settings
        data = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings or {})
        try:
            return cls.settings_model.model_validate(data)
        except ValidationError as e:
            raise ProviderConfigError(format_validation_error(e),
                                      provider=cls.label_for()) from e

    @classmethod
    def label_for(cls) -> str:
        return f"{cls.kind}:{cls.name}"

    @property
    def label(self) -> str:
        """``kind:name``, e.g. ``tts:piper``: how logs, attempts and call records name us."""
        return self.label_for()

    def secret(self, name: str) -> str:
        try:
            return self._secrets[name]
        except KeyError:
            raise ProviderConfigError(f"missing secret {name!r}", provider=self.label) from None

    def warm_up(self) -> None:
        """Load models / open sessions before the call is answered. Default: nothing."""
        return None

    def close(self) -> None:
        """Release sessions and handles. Default: nothing."""
        return None

    def __repr__(self) -> str:  # never shows secrets
        return f"<{type(self).__name__} {self.label}>"

    # -- deadlines and retries ---------------------------------------------------------

    def _attempt(self, fn: Callable[[float], T], timeout: float) -> T:
        """Run ``fn(timeout)`` once under a hub deadline of ``timeout`` seconds."""
        timer = gevent.Timeout(timeout)
        timer.start()
        try:
            return fn(timeout)
        except gevent.Timeout as t:
            if t is not timer:
                raise
            raise ProviderTimeout(f"no answer within {timeout:g}s", provider=self.label) from None
        finally:
            timer.cancel()

    def _retry_delay(self, err: ProviderError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if isinstance(err, ProviderRateLimited) and err.retry_after is not None:
            return err.retry_after if err.retry_after <= self.settings.max_retry_wait else None
        base = self.settings.backoff * (2 ** (attempt - 1))
        return base * (0.75 + random.random() / 2)

    def _call(self, op: str, fn: Callable[[float], T], *, timeout: float | None = None) -> T:
        """Call ``fn(timeout)`` with a deadline per attempt, retrying retryable errors."""
        per_try = timeout if timeout is not None else self.settings.timeout
        attempts = self.settings.retries + 1
        for n in range(1, attempts + 1):
            started = time.monotonic()
            try:
                return self._attempt(fn, per_try)
            except ProviderError as err:
                if not err.provider:
                    err.provider = self.label
                delay = self._retry_delay(err, n) if err.retryable and n < attempts else None
                log.warning("provider.attempt_failed", provider=self.label, op=op, attempt=n,
                            error=type(err).__name__, detail=err.message,
                            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                            retry_in=None if delay is None else round(delay, 3))
                if delay is None:
                    raise
                gevent.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _call_stream(self, op: str, open_stream: Callable[[float], Iterator[T]], *,
                     timeout: float | None = None) -> Iterator[T]:
        """Iterate a vendor stream: retry (re)opening it until the first item arrives;
        each further item must come within the deadline too (an idle stream times out)."""
        per_try = timeout if timeout is not None else self.settings.timeout
        attempts = self.settings.retries + 1
        for n in range(1, attempts + 1):
            first = True
            try:
                it = self._attempt(lambda t: iter(open_stream(t)), per_try)
                while True:
                    item = self._attempt(lambda _t, it=it: next(it, _END), per_try)
                    if item is _END:
                        return
                    first = False
                    yield item
            except ProviderError as err:
                if not err.provider:
                    err.provider = self.label
                delay = self._retry_delay(err, n) if first and err.retryable and n < attempts else None
                log.warning("provider.stream_failed", provider=self.label, op=op, attempt=n,
                            error=type(err).__name__, detail=err.message, started=not first,
                            retry_in=None if delay is None else round(delay, 3))
                if delay is None:
                    raise
                gevent.sleep(delay)


_END: Any = object()
