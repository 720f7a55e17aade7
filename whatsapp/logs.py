"""Logging for the channel: redacted contacts and bodies, and the correlation id.

A WhatsApp address (``whatsapp:+15551234567``) is logged as ``***4567`` and a body as its length,
unless the operator opted in (``--log-pii`` / ``IVR_LOG_PII=1``, the same switch as calls:
`esl_controller.call_log`). The correlation id is made by the webhook for each message and bound
to every log line of its request and of each task that handles it (structlog contextvars).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from esl_controller.call_log import redact_number, redact_text

__all__ = ["bound", "contact_for_log", "new_correlation_id", "redact_text"]


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def contact_for_log(address: str | None) -> str:
    """``whatsapp:+15551234567`` → ``***4567`` (unless personal data is shown)."""
    if not address:
        return ""
    _, _, number = address.rpartition(":")
    return redact_number(number)


@contextmanager
def bound(**values: object) -> Iterator[None]:
    """Bind values (correlation_id, tenant, …) to every log line inside the block."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
