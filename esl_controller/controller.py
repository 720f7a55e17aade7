"""The per-call controller: session start-up → tenant and flow → flow runner → call record.

`CallController` is the server's call handler.  For each call it:

1. starts the `CallSession` (``connect``, ``sched_cancel``, ``myevents``, ``linger``); a socket
   in sync mode is refused by sending the caller to the fallback extension; a call that is no
   longer in our socket application when we connect (the start-up watchdog moved it while this
   process was hung) is let go untouched; every other call gets a FreeSWITCH-side dead-man's
   switch (`esl_controller.deadman`) for as long as we hold it;
2. resolves the tenant and its published flow from memory (`routing`); an unknown tenant or
   number sends the caller to the fallback extension;
3. takes the tenant's concurrent-call slot (when the tenant has a limit);
4. warms up the tenant's providers and runs the flow under the progress watchdog;
5. ends the call the safe way: a flow that ends normally hangs up with ``call-command: hangup``,
   a flow that failed, hit its step limit or stalled transfers the caller to the fallback
   extension (in the call's own context); after a transfer it watches FreeSWITCH's verdict (the
   record says ``transfer_failed`` with the cause when the dialplan had no such extension); a
   call taken from us mid-flow (``control_lost``) is released without a command that would
   disturb it;
6. writes the call record — always, including when the caller hung up during set-up, when the
   call was refused at capacity (`record_refused`) and when it was handed back on shutdown.

Outcomes beyond the flow's own: ``caller_hangup``, ``transferred``, ``transfer_failed``,
``control_lost``, ``handed_back``, ``stalled``, ``error``, ``step_limit``, ``unknown_tenant``,
``over_limit``, ``over_capacity``, ``refused_sync_mode``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import structlog

from esl_controller import metrics
from esl_controller.call_log import call_logger, redact_number, redact_text
from esl_controller.call_record import CallRecord, RecordSink, log_sink
from esl_controller.call_speech import CallSpeech
from esl_controller.deadman import DeadMansSwitch
from esl_controller.errors import CallGone, CommandError, CommandTimeout, ControlLost, EslError, SyncModeRefused
from esl_controller.routing import CallRoute, Routing
from esl_controller.session import CallSession, DeadmanTarget, SessionSettings
from esl_controller.tenant_services import warm_call_path
from esl_controller.watchdog import CallStalled, ProgressWatchdog

log = structlog.get_logger(__name__)

# Hangup causes with which FreeSWITCH ends a call it could not route after a transfer.
ROUTING_FAILURES = frozenset({"NO_ROUTE_DESTINATION", "UNALLOCATED_NUMBER", "NO_ROUTE_TRANSIT_NET",
                              "INVALID_NUMBER_FORMAT", "DESTINATION_OUT_OF_ORDER"})


@dataclass(slots=True)
class ControllerSettings:
    session: SessionSettings = field(default_factory=SessionSettings)
    fallback_extension: str = "ivr_fallback"
    fallback_dialplan: str = "XML"
    fallback_context: str | None = None  # None: the context the call is in (Caller-Context)
    step_limit: int = 200
    recordings_dir: Path = Path("var/recordings")
    deadman_seconds: int = 10            # FreeSWITCH moves the caller this long after we stop re-arming (0: off)
    deadman_every: float = 4.0           # how often every call's dead-man's switch is re-armed


class CallController:
    """Handles one call per invocation; shared by every call of a server."""

    def __init__(self, routing: Routing, *, settings: ControllerSettings | None = None,
                 record_sink: RecordSink = log_sink, watchdog: ProgressWatchdog | None = None,
                 call_limiter: Any = None, context_hook: Callable[[Any, CallRoute], None] | None = None) -> None:
        self.routing = routing
        self.settings = settings or ControllerSettings()
        self.record_sink = record_sink
        self.watchdog = watchdog or ProgressWatchdog()
        self.call_limiter = call_limiter
        self.context_hook = context_hook
        self.sessions: set[CallSession] = set()
        self.deadman = DeadMansSwitch(self.settings.deadman_seconds, self.settings.deadman_every)

    # ------------------------------------------------------------------ entry point

    def __call__(self, sock: socket.socket, address: Any) -> None:
        accepted = time.monotonic()
        record = CallRecord(started_at=time.time())
        session = CallSession(sock, address, settings=self.settings.session)
        self.sessions.add(session)
        metrics.ACTIVE_CALLS.inc()
        slot = None
        try:
            try:
                info = session.start(self._deadman_target())
            except SyncModeRefused as exc:
                self._refuse_sync(session, record, str(exc))
                return
            record.call_uuid, record.caller, record.destination = (
                info.uuid, info.caller_number, info.destination_number)
            record.tenant_name = info.domain_name
            session.log = call_logger(info.uuid, info.domain_name, info.caller_number)
            if session.deadman_command:
                self.deadman.add(session)
            route = self.routing.route(info)
            if route is None:
                session.log.warning("call.unknown_tenant_or_number", destination=info.destination_number,
                                    domain_uuid=info.domain_uuid)
                record.outcome = "unknown_tenant"
                self._to_fallback(session, record)
                return
            record.tenant_key, record.tenant_name = route.tenant_key, route.tenant_name
            if route.tenant_name != info.domain_name:
                # Resolved from the dialled number: every later line names the tenant.
                session.log = call_logger(info.uuid, route.tenant_name, info.caller_number)
            record.flow, record.flow_version = getattr(route.flow, "name", ""), route.flow_version
            record.tenant_id = route.tenant_id
            if self.call_limiter is not None and route.tenant is not None:
                admission = self.call_limiter.try_acquire(route.tenant)
                if not admission.admitted:
                    self._over_limit(session, record, admission)
                    return
                slot = route.tenant
            metrics.SETUP_SECONDS.observe(time.monotonic() - accepted)
            self._run_flow(session, route, record)
        except ControlLost as exc:
            self._control_lost(session, record, exc)
        except CallGone:
            if session.control_lost is not None:
                self._control_lost(session, record, session.control_lost)
            elif session.handed_back:
                record.outcome = "handed_back"
            elif session.transferred:
                self._transfer_outcome(session, record)
            elif session.released:
                record.outcome = "released"
            else:
                record.outcome = record.outcome if record.outcome not in ("unknown",) else "caller_hangup"
        except (CommandTimeout, CommandError, EslError) as exc:
            session.log.warning("call.esl_error", error=str(exc))
            metrics.ERRORS.labels("esl").inc()
            record.outcome = "error"
            self._to_fallback(session, record)
        except Exception:
            session.log.exception("call.controller_error")
            metrics.ERRORS.labels("controller").inc()
            record.outcome = "error"
            self._to_fallback(session, record)
        finally:
            self.deadman.discard(session)
            if slot is not None:
                self.call_limiter.release(slot)
            self._finish(session, record)
            self.sessions.discard(session)
            metrics.ACTIVE_CALLS.dec()

    def _deadman_target(self) -> DeadmanTarget | None:
        s = self.settings
        if not self.deadman.enabled:
            return None
        return DeadmanTarget(s.deadman_seconds, s.fallback_extension, s.fallback_dialplan, s.fallback_context)

    def record_refused(self, channel_data: dict[str, str], reason: str) -> None:
        """A call the server handed straight back at capacity still gets its record."""
        record = CallRecord(started_at=time.time(), ended_at=time.time(), outcome=reason,
                            call_uuid=channel_data.get("Unique-ID", ""),
                            caller=channel_data.get("Caller-Caller-ID-Number", ""),
                            destination=channel_data.get("Caller-Destination-Number", ""),
                            tenant_name=channel_data.get("variable_domain_name", ""))
        metrics.CALLS.labels(reason).inc()
        try:
            self.record_sink(record)
        except Exception:
            log.exception("call.record_failed", call_uuid=record.call_uuid)

    # ------------------------------------------------------------------ the flow

    def _run_flow(self, session: CallSession, route: CallRoute, record: CallRecord) -> None:
        from ivr_flows.context import FlowContext
        from ivr_flows.runner import FlowRunner

        ctx = FlowContext(call=session, vars=dict(getattr(route.flow, "vars", {}) or {}), log=session.log,
                          prompt_dir=route.prompt_dir,
                          recordings_dir=(route.recordings_dir or self.settings.recordings_dir).resolve()
                          / route.tenant_key,
                          flow_loader=route.flow_loader, transfer_context=route.transfer_context,
                          redact=redact_text)
        for key, value in route.services.items():
            if hasattr(ctx, key):
                setattr(ctx, key, value)
            else:
                ctx.extensions[key] = value
        providers = route.services.get("providers")
        if providers is not None:
            # Before the flow answers: the TTS and STT the first nodes need are loaded now.
            warm_call_path(providers)
            speech = CallSpeech(providers)
            ctx.synthesizer = ctx.synthesizer or speech
            ctx.recognizer = ctx.recognizer or speech
            record.latencies["providers"] = speech.usage
        if self.context_hook is not None:
            self.context_hook(ctx, route)
        runner = FlowRunner(route.flow, ctx, step_limit=self.settings.step_limit)
        current = gevent.getcurrent()
        self.watchdog.watch(current, session)
        session.log.info("call.flow_start", flow=record.flow, destination=record.destination)
        try:
            result = runner.run()
        except CallStalled:
            session.log.warning("call.stalled_to_fallback")
            record.outcome = "stalled"
            self._to_fallback(session, record)
            return
        finally:
            self.watchdog.forget(current)
        self._collect(result, ctx, record)
        outcome = result.outcome
        if session.control_lost is not None:
            self._control_lost(session, record, session.control_lost)
        elif session.handed_back:
            record.outcome = "handed_back"
        elif session.transferred:
            self._transfer_outcome(session, record)
        elif session.gone:
            ended_by_flow = ("hangup", "controller_hangup", "bridged")
            record.outcome = outcome if outcome in ended_by_flow else "caller_hangup"
        elif outcome in ("error", "step_limit"):
            record.outcome = outcome
            self._to_fallback(session, record)
        else:
            record.outcome = outcome or "completed"
            session.hangup("NORMAL_CLEARING")

    @staticmethod
    def _collect(result: Any, ctx: Any, record: CallRecord) -> None:
        record.path = [step.as_dict() if hasattr(step, "as_dict") else dict(step) for step in result.steps]
        record.vars = {k: v for k, v in (result.vars or {}).items() if isinstance(v, str | int | float | bool)}
        record.recordings = [
            {"node": r.node, "path": r.path, "duration_ms": r.duration_ms, "stop": r.stop,
             "transcript": r.transcript} for r in getattr(ctx, "recordings", [])]
        turns = ctx.extensions.get("turns") if hasattr(ctx, "extensions") else None
        if turns:
            record.turns = list(turns)

    # ------------------------------------------------------------------ safe endings

    def _transfer_outcome(self, session: CallSession, record: CallRecord) -> None:
        """What FreeSWITCH did with our transfer: the dialplan ran the extension, or hung up (no route)."""
        verdict = session.transfer_verdict()
        if verdict not in ROUTING_FAILURES:
            record.outcome = "transferred"
            return
        record.outcome = "transfer_failed"
        record.hangup_cause = record.hangup_cause or verdict
        metrics.ERRORS.labels("transfer").inc()
        session.log.error("call.transfer_failed", cause=verdict,
                          hint="no such extension in that context: check the transfer node's 'context' "
                               "or the tenant's transfer_context")

    def _control_lost(self, session: CallSession, record: CallRecord, exc: ControlLost) -> None:
        if not record.call_uuid:          # lost at connect: the record comes from the connect reply
            data = session.channel_data
            record.call_uuid = data.get("Unique-ID", "")
            record.caller = data.get("Caller-Caller-ID-Number", "")
            record.destination = data.get("Caller-Destination-Number", "")
            record.tenant_name = data.get("variable_domain_name", "")
        record.outcome = "control_lost"
        record.latencies["control_lost_where"] = exc.where
        session.log.warning("call.control_lost_released", where=exc.where)

    def _to_fallback(self, session: CallSession, record: CallRecord) -> None:
        """Send the caller to a person: transfer to the fallback extension (socket_resume=false first)."""
        if session.gone or session.transferred or session.control_lost is not None:
            return
        s = self.settings
        try:
            # Why, on the channel: FreeSWITCH's CDR (and `ivr call simulate`) can say it.
            session.execute_nowait("set", f"ivr_fallback_reason={record.outcome}")
            session.transfer(s.fallback_extension, dialplan=s.fallback_dialplan,
                             context=s.fallback_context or session.context)
            session.log.info("call.fallback", target=s.fallback_extension, outcome=record.outcome)
        except (CallGone, EslError) as exc:
            session.log.warning("call.fallback_failed", error=str(exc))
            session.hand_back()

    def _refuse_sync(self, session: CallSession, record: CallRecord, why: str) -> None:
        data = session.channel_data
        record.call_uuid = data.get("Unique-ID", "")
        record.caller, record.destination = data.get("Caller-Caller-ID-Number", ""), data.get(
            "Caller-Destination-Number", "")
        record.outcome = "refused_sync_mode"
        log.error("call.sync_mode_refused", call_uuid=record.call_uuid, reason=why,
                  caller=redact_number(record.caller))
        s = self.settings
        session.divert(s.fallback_extension, dialplan=s.fallback_dialplan,
                       context=s.fallback_context or data.get("Caller-Context") or None)

    def _over_limit(self, session: CallSession, record: CallRecord, admission: Any) -> None:
        """The tenant is at its concurrent-call limit: reject (busy), announce then hang up, or transfer."""
        record.outcome = "over_limit"
        metrics.REJECTED.labels("tenant_limit").inc()
        session.log.warning("call.tenant_over_limit", action=admission.action, limit=admission.limit)
        try:
            if admission.action == "transfer" and admission.transfer_to:
                session.transfer(admission.transfer_to)
                return
            if admission.action == "announce" and admission.prompt:
                session.answer()
                prompt = str(admission.prompt)
                if prompt.endswith(".wav"):
                    session.playback(prompt, timeout=60)
                else:
                    session.speak(prompt, timeout=60)
            session.hangup(admission.hangup_cause or "USER_BUSY")
        except CallGone:
            pass

    def _finish(self, session: CallSession, record: CallRecord) -> None:
        record.answered_at = session.answered_at
        record.hangup_cause = session.hangup_cause
        record.ended_at = session.hangup_at or time.time()
        try:
            session.finish()
        except Exception:
            session.log.exception("call.finish_failed")
        if record.call_uuid:
            metrics.CALLS.labels(record.outcome).inc()
            try:
                self.record_sink(record)
            except Exception:
                session.log.exception("call.record_failed")
        else:
            # The peer closed before a connect reply: no channel, so no call to record.
            log.warning("call.no_channel", peer=str(session.address), reason=record.hangup_cause)
        session.log.info("call.end", outcome=record.outcome, cause=record.hangup_cause)
