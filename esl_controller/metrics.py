"""Prometheus metrics of the controller (served by ``ivr serve --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_CALLS = Gauge("ivr_active_calls", "Calls currently controlled by this process")
CALLS = Counter("ivr_calls_total", "Calls by final outcome", ["outcome"])
REJECTED = Counter("ivr_calls_rejected_total", "Calls handed back at once", ["reason"])
SETUP_SECONDS = Histogram("ivr_call_setup_seconds", "Accept to flow start",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
NODE_SECONDS = Histogram("ivr_node_seconds", "Time spent in a flow node", ["type"],
                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ERRORS = Counter("ivr_errors_total", "Errors by kind", ["kind"])
