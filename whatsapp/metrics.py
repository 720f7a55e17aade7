"""Prometheus metrics of the channel (``/metrics`` of ``ivr web``; ``ivr whatsapp worker --metrics-port``).

Latencies carry the message's correlation id as an exemplar (shown in the OpenMetrics format), so a
slow bucket leads to the log lines of one message without a label per message.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOK_SECONDS = Histogram("ivr_whatsapp_webhook_seconds", "Inbound webhook: request to acknowledgement",
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
INBOUND = Counter("ivr_whatsapp_inbound_total", "Inbound webhooks by result", ["result"])
STATUS_CALLBACKS = Counter("ivr_whatsapp_status_callbacks_total", "Delivery status callbacks", ["status"])
PROCESS_SECONDS = Histogram("ivr_whatsapp_process_seconds", "A message from receipt to its last part sent",
                            ["outcome"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
OUTBOUND = Counter("ivr_whatsapp_outbound_total", "Reply parts and handoffs sent, by kind and result",
                   ["kind", "result"])
RETRIES = Counter("ivr_whatsapp_retries_total", "Tries that will be retried, by error class", ["error_class"])
DEAD = Counter("ivr_whatsapp_dead_letters_total", "Messages given up on, by error class", ["error_class"])
REQUEUED = Counter("ivr_whatsapp_requeued_total", "Messages queued again by the recovery sweep")
