"""How long a failed try waits before the next: exponential backoff with jitter, bounded."""

from __future__ import annotations

import random


def backoff(attempt: int, *, base: float, maximum: float, retry_after: float | None = None) -> float:
    """Delay before try ``attempt + 1`` (``attempt`` counts from 1): ``base * 2**(attempt-1)``, at
    most `maximum`, with ±20 % jitter so retries of a burst do not arrive together; at least what
    the peer asked for (`retry_after`)."""
    delay = min(maximum, base * (2 ** max(0, attempt - 1)))
    delay *= random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return round(min(delay, maximum if retry_after is None else max(maximum, retry_after)), 3)
