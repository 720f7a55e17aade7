"""``ivr calls``: what happened on the phone — call records listed, shown turn by turn, exported.

Records come from the database the controllers write (``IVR_DATABASE_URL``). ``list`` and
``export`` take every tenant, or one (TENANT: id, domain_uuid or domain_name); ``--since`` is a
duration back from now (``2h``, ``30m``, ``7d``) or an ISO date/time; ``--json`` prints one JSON
object per record for scripts. ``show`` prints one call: its path through the flow (each node,
its outcome, time and facts; what a speech menu heard), each secretary turn (what the caller
said, the passages found with their scores, the decision and the answer, the stage latencies)
and the recordings with their files. The CLI shows what the operator asked for, numbers and
transcripts included: it is not a log.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
from typing import Any, TextIO

import click

from schema.rows import CallRecordInfo
from schema.store import TenantStore
from schema.tenants import find_tenant, list_tenants
from scripts.db_commands import open_sessions, url_option

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
COLUMNS = ("started_at", "tenant", "call_uuid", "caller", "destination", "flow", "outcome", "hangup_cause",
           "seconds", "turns")


def parse_since(value: str | None, *, now: dt.datetime | None = None) -> dt.datetime | None:
    if not value:
        return None
    now = now or dt.datetime.now(dt.UTC)
    found = _DURATION.match(value.strip())
    if found:
        return now - dt.timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration (2h, 30m, 7d) nor an ISO date/time",
                                 param_hint="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _seconds(r: CallRecordInfo) -> float | None:
    if r.started_at is None or r.ended_at is None:
        return None
    return round((r.ended_at - r.started_at).total_seconds(), 1)


def _row(r: CallRecordInfo, tenant: str) -> dict[str, Any]:
    return {"started_at": r.started_at.isoformat() if r.started_at else None, "tenant": tenant,
            "call_uuid": r.call_uuid, "caller": r.caller, "destination": r.destination, "flow": r.flow_name,
            "outcome": r.outcome, "hangup_cause": r.hangup_cause, "seconds": _seconds(r), "turns": len(r.turns)}


def _records(url: str | None, tenant: str | None, *, since: str | None, outcome: str | None,
             number: str | None, limit: int) -> list[tuple[str, CallRecordInfo]]:
    with open_sessions(url) as sessions:
        tenants = [find_tenant(sessions, tenant)] if tenant else list_tenants(sessions)
        found: list[tuple[str, CallRecordInfo]] = []
        for info in tenants:
            store = TenantStore(sessions, info.id)
            found += [(info.domain_name, r) for r in store.call_records(
                limit=limit, since=parse_since(since), outcome=outcome, number=number)]
    found.sort(key=lambda pair: pair[1].started_at or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
    return found[:limit]


def _filters(func: Any) -> Any:
    func = click.option("--number", default=None, help="Only calls from or to this number.")(func)
    func = click.option("--outcome", default=None, help="Only this outcome (transferred, caller_hangup, ...).")(func)
    func = click.option("--since", default=None, help="2h, 30m, 7d, or an ISO date/time.")(func)
    return func


@click.group("calls")
def calls() -> None:
    """Call records: list, show one turn by turn, export."""


@calls.command("list")
@url_option
@click.argument("tenant", required=False)
@_filters
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_command(url: str | None, tenant: str | None, since: str | None, outcome: str | None, number: str | None,
                 limit: int, as_json: bool) -> None:
    """The most recent calls, newest first (every tenant unless TENANT is given)."""
    rows = [_row(r, name) for name, r in _records(url, tenant, since=since, outcome=outcome, number=number,
                                                  limit=limit)]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("no calls")
        return
    click.echo(f"{'started (UTC)':<20} {'tenant':<22} {'caller':<14} {'to':<8} {'outcome':<16} {'secs':>6}  call")
    for row in rows:
        started = (row["started_at"] or "")[:19].replace("T", " ")
        secs = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        click.echo(f"{started:<20} {row['tenant'][:22]:<22} {row['caller'][:14]:<14} {row['destination'][:8]:<8} "
                   f"{row['outcome'][:16]:<16} {secs:>6}  {row['call_uuid']}")


def _find_call(url: str | None, call_uuid: str) -> tuple[str, CallRecordInfo]:
    from schema.errors import CallRecordNotFound

    with open_sessions(url) as sessions:
        for info in list_tenants(sessions):
            try:
                return info.domain_name, TenantStore(sessions, info.id).call_record(call_uuid)
            except CallRecordNotFound:
                continue
    raise click.ClickException(f"no call record for call {call_uuid}")


def _show(tenant: str, r: CallRecordInfo, out: TextIO) -> None:
    def line(text: str = "") -> None:
        out.write(text + "\n")

    line(f"call {r.call_uuid}  tenant {tenant}  flow {r.flow_name or '-'}")
    line(f"  {r.caller or '?'} -> {r.destination or '?'}  started {r.started_at}  answered {r.answered_at}  "
         f"ended {r.ended_at}")
    line(f"  outcome {r.outcome}" + (f"  cause {r.hangup_cause}" if r.hangup_cause else ""))
    if r.path:
        line("path:")
        for step in r.path:
            detail = dict(step.get("detail") or {})
            heard = detail.pop("heard", None)
            facts = "  ".join(f"{k}={v}" for k, v in detail.items())
            line(f"  {step.get('start_ms', 0):>7} ms  {step.get('node')} ({step.get('type')}) -> "
                 f"{step.get('outcome')}  [{step.get('duration_ms', 0)} ms]  {facts}".rstrip())
            for h in heard or []:
                line(f"             heard (attempt {h.get('attempt')}, {h.get('stt') or '?'}): "
                     f"{h.get('text')!r} -> option {h.get('option')}")
    for turn in r.turns:
        line(f"turn {turn.get('turn')} ({turn.get('node')}): {turn.get('outcome', '?')}")
        line(f"  caller: {turn.get('caller', '')!r}  (stt {turn.get('stt') or '?'}"
             + (", streamed" if turn.get("streamed_stt") else "") + ")")
        for source in turn.get("sources", []):
            line(f"  source {source.get('score', 0):.3f}  {source.get('source')}")
        if turn.get("answer"):
            line(f"  answer ({turn.get('llm') or '?'}): {turn['answer']!r}")
        for key in ("barge_in", "fallback", "retrieval_error", "timed_out"):
            if turn.get(key):
                line(f"  {key}: {turn[key]}")
        latency = turn.get("latency_ms") or {}
        if latency:
            line("  latency ms: " + "  ".join(f"{k.removesuffix('_ms')}={v}" for k, v in latency.items()))
    for rec in r.recordings:
        line(f"recording {rec.get('node')}: {rec.get('path')}  {rec.get('duration_ms')} ms  stop {rec.get('stop')}"
             + (f"  transcript {rec.get('transcript')!r}" if rec.get("transcript") else ""))


@calls.command("show")
@url_option
@click.argument("call_uuid")
@click.option("--json", "as_json", is_flag=True)
def show_command(url: str | None, call_uuid: str, as_json: bool) -> None:
    """One call: its path through the flow, each secretary turn, its recordings."""
    tenant, record = _find_call(url, call_uuid)
    if as_json:
        click.echo(json.dumps(_row(record, tenant) | {"path": record.path, "turns": record.turns,
                                                      "recordings": record.recordings,
                                                      "latencies": record.latencies}, default=str))
        return
    _show(tenant, record, sys.stdout)


@calls.command("export")
@url_option
@click.argument("tenant", required=False)
@_filters
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=100000, show_default=True)
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default: stdout).")
def export_command(url: str | None, tenant: str | None, since: str | None, outcome: str | None, number: str | None,
                   fmt: str, limit: int, output: TextIO) -> None:
    """Every matching call: CSV (one row per call) or JSON lines (the whole record)."""
    found = _records(url, tenant, since=since, outcome=outcome, number=number, limit=limit)
    if fmt == "csv":
        writer = csv.DictWriter(output, fieldnames=COLUMNS)
        writer.writeheader()
        for name, r in found:
            writer.writerow(_row(r, name))
        return
    for name, r in found:
        output.write(json.dumps(_row(r, name) | {"path": r.path, "turns": r.turns, "recordings": r.recordings,
                                                 "latencies": r.latencies}, default=str) + "\n")
