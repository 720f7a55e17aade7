"""Structured logging: one configuration for the process, a logger per call, redaction.

Every line of a call carries ``call_uuid`` and ``tenant``.  Phone numbers and transcripts are
redacted unless the operator opts in (``IVR_LOG_PII=1`` or ``ivr serve --log-pii``); secrets are
never passed to a logger in the first place.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_show_pii = os.environ.get("IVR_LOG_PII", "") in ("1", "true", "yes")


def configure_logging(*, json_lines: bool = False, level: str = "INFO", show_pii: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger once, at an entry point."""
    global _show_pii
    if show_pii is not None:
        _show_pii = show_pii
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(message)s")
    renderer: Any = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(
        colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def redact_number(number: str | None) -> str:
    """``+15551234567`` → ``***4567`` unless the operator opted in to personal data in logs."""
    if not number:
        return ""
    if _show_pii:
        return number
    return "***" + number[-4:] if len(number) > 4 else "***"


def redact_text(text: str | None) -> str:
    """Transcripts and spoken answers: only their length unless the operator opted in."""
    if text is None:
        return ""
    return text if _show_pii else f"<{len(text)} chars>"


def call_logger(call_uuid: str, tenant: str, caller: str = "") -> Any:
    """A logger bound to one call."""
    return structlog.get_logger("ivr.call").bind(call_uuid=call_uuid, tenant=tenant or "-",
                                                  caller=redact_number(caller))
