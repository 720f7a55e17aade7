"""Handing a conversation to a person: a signed POST to the account's ``handoff_url``.

The body is JSON: ``event`` (``handoff`` when the secretary gives the conversation up, ``message``
for each message the contact writes while a person has it), the tenant, the conversation id, the
contact's WhatsApp address (the person must be able to answer), why, and the transcript. It is
signed like the flows' webhooks (`ivr_flows.webhook_signing`: ``X-IVR-Timestamp`` and
``X-IVR-Signature: sha256=…`` with the account's handoff secret) and carries
``X-IVR-Correlation-Id`` and ``Idempotency-Key`` (the same on every retry: the receiver can drop
a repeat). 5xx, 429, timeouts and connection errors are `Retryable`; other refusals `Permanent`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from ivr_flows.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from whatsapp.errors import Permanent, Retryable
from whatsapp.store import HistoryEntry


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    event: str                 # handoff | message
    tenant: str
    conversation_id: int
    contact: str
    reason: str
    transcript: tuple[HistoryEntry, ...]

    def body(self) -> str:
        return json.dumps({"event": self.event, "tenant": self.tenant, "conversation_id": self.conversation_id,
                           "contact": self.contact, "reason": self.reason,
                           "transcript": [e.as_json() for e in self.transcript]}, ensure_ascii=False)


def post_handoff(url: str, body: str, *, secret: str | None, correlation_id: str, idempotency_key: str,
                 timeout: float, session: requests.Session | None = None) -> int:
    """POST one stored handoff body; returns the HTTP status (2xx), raises otherwise."""
    data = body.encode("utf-8")
    headers = {"Content-Type": "application/json", "X-IVR-Correlation-Id": correlation_id,
               "Idempotency-Key": idempotency_key}
    if secret:
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, data)
    own = session is None
    session = session or requests.Session()
    try:
        response = session.post(url, data=data, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout as e:
        raise Retryable("the handoff webhook did not answer in time", error_class="HandoffTimeout") from e
    except requests.RequestException as e:
        raise Retryable("the handoff webhook could not be reached", error_class="HandoffUnreachable") from e
    finally:
        if own:
            session.close()
    if response.status_code == 429 or response.status_code >= 500:
        raise Retryable(f"the handoff webhook answered {response.status_code}", error_class="HandoffServerError")
    if response.status_code >= 300:
        raise Permanent(f"the handoff webhook answered {response.status_code}",
                        error_class=f"HandoffRejected{response.status_code}")
    return response.status_code


def transcript_of(history: Sequence[HistoryEntry], limit: int = 20) -> tuple[HistoryEntry, ...]:
    return tuple(history[-limit:])
