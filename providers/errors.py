"""The providers package's exception family, mapped from vendor errors at the boundary.

Every vendor SDK or HTTP failure is translated where our code meets the vendor
(``raise … from e``), so callers only ever see this tree::

    ProviderError(retryable: bool)          any provider failure
    ├── ProviderTimeout          (retryable) no answer in time: our deadline, an SDK or
    │                                        socket timeout, HTTP 408
    ├── ProviderRateLimited      (retryable) HTTP 429 or a vendor throttling code;
    │                                        carries ``retry_after`` seconds when known
    ├── ProviderUnavailable      (retryable) connection refused/reset, HTTP 5xx, a crashed
    │                                        worker process, a model that is still loading
    ├── ProviderAuthError        (permanent) HTTP 401/403, missing or rejected credentials
    ├── ProviderBadRequest       (permanent) any other HTTP 4xx: we sent something wrong
    ├── ProviderBadResponse      (permanent) the vendor answered 2xx with a body we cannot
    │                                        read (malformed JSON, missing fields, bad audio)
    ├── ProviderConfigError      (permanent) settings or secrets fail validation, a model path
    │   │                                    does not exist, an optional package is missing
    │   └── UnknownProvider                  no provider by that name (with "did you mean")
    └── AllProvidersFailed       (permanent) every provider of a fallback chain failed;
                                             ``attempts`` says who failed and why

``retryable`` is about retrying *the same* provider: the base class retries only those.
A fallback chain moves on to the next provider after any failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ProviderError(Exception):
    """A provider failed. ``retryable`` says whether the same request may succeed if retried."""

    default_retryable = False

    def __init__(self, message: str, *, provider: str = "", retryable: bool | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retryable = self.default_retryable if retryable is None else retryable
        self.status = status

    def __str__(self) -> str:
        prefix = f"{self.provider}: " if self.provider else ""
        return f"{prefix}{self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable with its keyword arguments, so worker processes can send it back.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[ProviderError], message: str, state: dict[str, Any]) -> ProviderError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ProviderTimeout(ProviderError):
    default_retryable = True


class ProviderRateLimited(ProviderError):
    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    default_retryable = True


class ProviderAuthError(ProviderError):
    pass


class ProviderBadRequest(ProviderError):
    pass


class ProviderBadResponse(ProviderError):
    pass


class ProviderConfigError(ProviderError):
    pass


class UnknownProvider(ProviderConfigError):
    """No provider by that name; ``suggestions`` holds close names."""

    def __init__(self, message: str, *, suggestions: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.suggestions = list(suggestions)


class AllProvidersFailed(ProviderError):
    """Every provider in a fallback chain failed; ``attempts`` holds each failure."""

    def __init__(self, message: str, *, attempts: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = tuple(attempts)


def error_for_status(status: int, message: str, *, provider: str = "",
                     retry_after: float | None = None) -> ProviderError:
    """The error for an HTTP status: 408/429/5xx retryable, 401/403 auth, other 4xx permanent."""
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status == 408:
        return ProviderTimeout(text, provider=provider, status=status)
    if status == 429:
        return ProviderRateLimited(text, provider=provider, status=status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderAuthError(text, provider=provider, status=status)
    if status >= 500:
        return ProviderUnavailable(text, provider=provider, status=status)
    if status >= 400:
        return ProviderBadRequest(text, provider=provider, status=status)
    return ProviderBadResponse(f"unexpected {text}", provider=provider, status=status)
