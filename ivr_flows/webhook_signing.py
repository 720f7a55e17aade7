"""HMAC-SHA256 signatures of webhook requests, for the sender (the `webhook` node) and receivers.

The node sends `X-IVR-Timestamp: <unix seconds>` and
`X-IVR-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the tenant's secret>`.
A receiver recomputes it with `verify(...)` and should refuse old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-IVR-Signature"
TIMESTAMP_HEADER = "X-IVR-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None, tolerance: float = 300
) -> bool:
    """True when `signature` is right for `timestamp` and `body` (and, given `now`, recent)."""
    if now is not None:
        try:
            if abs(now - float(timestamp)) > tolerance:
                return False
        except ValueError:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
