"""What the controller knows about a call when it ends, and where that goes.

`CallRecord` is written for every call, including calls the caller abandons before the flow
starts; ``sink`` is the log by default and the database writer (``schema.call_records``)
when a database is configured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from esl_controller.call_log import redact_number

log = structlog.get_logger(__name__)


def _utc(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() if ts else None


@dataclass(slots=True)
class CallRecord:
    call_uuid: str = ""
    tenant_key: str = ""
    tenant_id: int | None = None
    tenant_name: str = ""
    caller: str = ""
    destination: str = ""
    started_at: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    outcome: str = "unknown"
    hangup_cause: str = ""
    flow: str = ""
    flow_version: str = ""
    path: list[dict[str, Any]] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    latencies: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["started_at"], row["answered_at"], row["ended_at"] = (
            _utc(self.started_at), _utc(self.answered_at), _utc(self.ended_at))
        return row


RecordSink = Callable[[CallRecord], None]


def database_row(record: CallRecord) -> dict[str, Any]:
    """The record in the shape of ``schema.call_records`` (no flow variables: they may hold personal data)."""
    return {
        "call_uuid": record.call_uuid, "tenant_id": record.tenant_id, "caller": record.caller,
        "destination": record.destination,
        "started_at": _utc(record.started_at), "answered_at": _utc(record.answered_at),
        "ended_at": _utc(record.ended_at), "outcome": record.outcome, "hangup_cause": record.hangup_cause,
        "flow_name": record.flow,
        "flow_version_id": int(record.flow_version) if record.flow_version.isdigit() else None,
        "path": record.path, "recordings": record.recordings, "turns": record.turns, "latencies": record.latencies,
    }


def log_sink(record: CallRecord) -> None:
    log.info("call.record", call_uuid=record.call_uuid, tenant=record.tenant_name or "-",
             caller=redact_number(record.caller), outcome=record.outcome, cause=record.hangup_cause,
             flow=record.flow, steps=len(record.path),
             seconds=round((record.ended_at or record.started_at) - record.started_at, 3))
