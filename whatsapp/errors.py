"""The WhatsApp channel's exceptions. A ``reason`` is safe to store and log: no phone number, no body."""

from __future__ import annotations


class WhatsAppError(Exception):
    """Base of the channel's errors."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(WhatsAppError):
    """Bad channel or account configuration (CLI input, environment)."""


class AccountNotFound(WhatsAppError):
    pass


class LeaseLost(WhatsAppError):
    """This worker's lease on a message lapsed (a stalled process) and another worker took it over:
    stop without side effects; the new holder finishes the message."""


class Retryable(WhatsAppError):
    """A transient failure (Twilio 429 or 5xx, a timeout, a provider down): retried with backoff."""

    def __init__(self, reason: str, *, error_class: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.retry_after = retry_after


class Permanent(WhatsAppError):
    """A failure that no retry can fix: the message goes to the dead-letter queue."""

    def __init__(self, reason: str, *, error_class: str) -> None:
        super().__init__(reason)
        self.error_class = error_class


class OutsideWindow(Permanent):
    """WhatsApp refuses a free-form message outside the 24 hours after the contact last wrote."""

    def __init__(self, reason: str = "outside WhatsApp's 24-hour window") -> None:
        super().__init__(reason, error_class="OutsideWindow")


class MediaRefused(Permanent):
    """A media URL that is not Twilio's, a redirect elsewhere, too large, or not decodable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, error_class="MediaRefused")


class MediaUnusable(MediaRefused):
    """Media that is Twilio's but that we cannot use (too large, not decodable): the contact is told."""
