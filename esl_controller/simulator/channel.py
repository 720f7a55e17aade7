"""The simulated channel: variables, states, caller profile, DTMF, and the events it fires.

Channel variables behave like FreeSWITCH's: setting one removes it and appends it at the end
(so ``current_application`` moves behind ``current_application_data``, trace ``c1``), setting
None removes it, and nothing is cleared behind the controller's back (a
``playback_terminator_used`` stays until a playback starts or someone unsets it).

``Channel-State`` is the running state and ``Channel-State-Number`` the requested one, so a
CHANNEL_HANGUP reads ``CS_EXECUTE`` / ``10`` as in the traces.  Every event gets the next
``Event-Sequence`` of the simulator when it is created; an event created while an application
runs may be *deferred* and handed to the listener after that application's
CHANNEL_EXECUTE_COMPLETE (the DTMF of digits a media application consumed, traces ``c2``,
``d1``, ``f2``), so its sequence number is lower than the completion's, as on the wire.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from esl_controller.simulator.clock import Signal, SimClock
from esl_controller.simulator.events import NO_VARIABLES, Identity, SimEvent, common_headers

STATE_NUMBERS = {
    "CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8, "CS_RESET": 9,
    "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12,
}
CALL_STATE_NUMBERS = {"DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HELD": 5,
                      "RING_WAIT": 6, "HANGUP": 7, "UNHELD": 8}
Q850 = {
    "UNALLOCATED_NUMBER": 1, "NO_ROUTE_DESTINATION": 3, "NORMAL_CLEARING": 16, "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18, "NO_ANSWER": 19, "CALL_REJECTED": 21, "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28, "NORMAL_UNSPECIFIED": 31, "NORMAL_TEMPORARY_FAILURE": 41,
    "RECOVERY_ON_TIMER_EXPIRE": 102, "ORIGINATOR_CANCEL": 487, "MEDIA_TIMEOUT": 604,
    "ALLOTTED_TIMEOUT": 602, "MANAGER_REQUEST": 503, "SYSTEM_SHUTDOWN": 503, "LOSE_RACE": 502,
}


class VarStore:
    """Ordered channel variables; a set moves the variable to the end."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def set(self, name: str, value: str | None) -> None:
        self._values.pop(name, None)
        if value is not None:
            self._values[name] = value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def items(self) -> list[tuple[str, str]]:
        return list(self._values.items())

    def snapshot(self) -> dict[str, str]:
        return dict(self._values)


def truthy(value: str | None) -> bool:
    """FreeSWITCH's ``switch_true``."""
    return (value or "").strip().lower() in ("true", "yes", "on", "enabled", "active", "allow", "1")


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    duration_ms: int = 250
    source: str = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """A transfer that the session thread will act on (``CF_TRANSFER``)."""

    extension: str
    dialplan: str
    context: str
    by: str                 # "controller" (transfer app, uuid_transfer) or "dialplan" (watchdog, fallback)
    reason: str = ""


@dataclass(slots=True)
class QueuedApp:
    """A ``sendmsg`` execute waiting in the channel's private event queue."""

    app: str
    arg: str
    event_uuid: str | None
    loops: int = 1
    event_lock: bool = False


@dataclass(slots=True)
class Profile:
    """The caller profile (``Caller-*`` headers)."""

    caller_name: str
    caller_number: str
    destination: str
    created_us: int
    context: str = "default"
    dialplan: str = "xml"
    index: int = 1
    transfer_source: str | None = None
    rdnis: str | None = None


class Channel:
    """One simulated FreeSWITCH channel (the leg that runs the dialplan and the socket app)."""

    def __init__(self, *, identity: Identity, clock: SimClock, next_seq: Callable[[], int], uuid: str,
                 a_leg_uuid: str, name: str, session_id: int, caller_number: str, caller_name: str,
                 destination: str) -> None:
        self.identity = identity
        self.clock = clock
        self._next_seq = next_seq
        self.uuid = uuid
        self.a_leg_uuid = a_leg_uuid
        self.name = name
        self.created_us = clock.epoch_us()
        self.profile = Profile(caller_name, caller_number, destination, self.created_us)
        self.vars = VarStore()
        for key, value in (
            ("direction", "inbound"), ("uuid", uuid), ("session_id", str(session_id)), ("channel_name", name),
            ("read_codec", "L16"), ("read_rate", "8000"), ("write_codec", "L16"), ("write_rate", "8000"),
            ("origination_uuid", a_leg_uuid), ("origination_caller_id_number", caller_number),
            ("origination_caller_id_name", caller_name), ("other_loopback_leg_uuid", a_leg_uuid),
            ("loopback_leg", "B"), ("call_uuid", uuid),
        ):
            self.vars.set(key, value)
        self.state = "CS_EXECUTE"            # requested (Channel-State-Number)
        self.running_state = "CS_EXECUTE"    # Channel-State
        self.call_state = "RINGING"
        self.answer_state = "ringing"
        self.answered_us = 0
        self.hangup_us = 0
        self.transfer_us = 0
        self.bridged_us = 0
        self.hung_up = False
        self.hangup_cause = ""
        self.hangup_by = ""
        self.destroyed = False
        self.signal = Signal()
        self.dtmf: deque[Dtmf] = deque()
        self.digits_dialed: list[str] = []
        self.break_flag = False
        self.transfer_pending: TransferRequest | None = None
        self.reset_requested = False         # CS_RESET while inside the socket app: cut and continue
        self.reset_trap = False              # CS_RESET elsewhere: dead air
        self.control_epoch = 0               # bumped when a controller lets go (ends a park)
        self.app_queue: deque[QueuedApp] = deque()
        self.apps_started: Counter[str] = Counter()
        self.apps_completed: Counter[str] = Counter()
        self.app_times: dict[tuple[str, bool], list[float]] = {}   # (app, started) → simulated seconds
        self.answered_at: float | None = None
        self.app_started_at = 0.0                 # when the innermost running application started
        self.current_app: str | None = None
        self.parked = False
        self.other_leg: list[tuple[str, str]] | None = None
        self.sink: Callable[[SimEvent], None] | None = None
        self.down_hooks: list[Callable[[], None]] = []
        self.dtmf_sent: list[str] = []
        self.events: list[SimEvent] = []
        self._deferred: list[SimEvent] = []

    # ------------------------------------------------------------------ events

    def _basic(self, *, cause: bool = True) -> list[tuple[str, str]]:
        headers = [
            ("Channel-State", self.running_state),
            ("Channel-Call-State", self.call_state),
            ("Channel-State-Number", str(STATE_NUMBERS[self.state])),
            ("Channel-Name", self.name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", "inbound"),
            ("Presence-Call-Direction", "inbound"),
            ("Channel-HIT-Dialplan", "true"),
            ("Channel-Call-UUID", self.uuid),
            ("Answer-State", self.answer_state),
        ]
        if cause and self.hung_up:
            headers.append(("Hangup-Cause", self.hangup_cause))
        headers += [
            ("Channel-Read-Codec-Name", "L16"), ("Channel-Read-Codec-Rate", "8000"),
            ("Channel-Read-Codec-Bit-Rate", "128000"), ("Channel-Write-Codec-Name", "L16"),
            ("Channel-Write-Codec-Rate", "8000"), ("Channel-Write-Codec-Bit-Rate", "128000"),
        ]
        return headers

    def profile_headers(self, prefix: str = "Caller") -> list[tuple[str, str]]:
        p = self.profile
        headers = [
            ("Direction", "inbound"), ("Logical-Direction", "inbound"), ("Dialplan", p.dialplan),
            ("Caller-ID-Name", p.caller_name), ("Caller-ID-Number", p.caller_number),
            ("Orig-Caller-ID-Name", p.caller_name), ("Orig-Caller-ID-Number", p.caller_number),
            ("Callee-ID-Name", "Outbound Call"), ("Callee-ID-Number", "default"),
            ("ANI", p.caller_number), ("Destination-Number", p.destination), ("Unique-ID", self.uuid),
            ("Source", "mod_loopback"),
        ]
        if p.transfer_source:
            headers.append(("Transfer-Source", p.transfer_source))
        headers.append(("Context", p.context))
        if p.rdnis:
            headers.append(("RDNIS", p.rdnis))
        headers += [
            ("Channel-Name", self.name), ("Profile-Index", str(p.index)),
            ("Profile-Created-Time", str(p.created_us)), ("Channel-Created-Time", str(self.created_us)),
            ("Channel-Answered-Time", str(self.answered_us)), ("Channel-Progress-Time", "0"),
            ("Channel-Progress-Media-Time", "0"), ("Channel-Hangup-Time", str(self.hangup_us)),
            ("Channel-Transfer-Time", str(self.transfer_us)), ("Channel-Resurrect-Time", "0"),
            ("Channel-Bridged-Time", str(self.bridged_us)), ("Channel-Last-Hold", "0"),
            ("Channel-Hold-Accum", "0"), ("Screen-Bit", "true"), ("Privacy-Hide-Name", "false"),
            ("Privacy-Hide-Number", "false"),
        ]
        return [(f"{prefix}-{key}", value) for key, value in headers]

    def variable_headers(self) -> list[tuple[str, str]]:
        return [(f"variable_{key}", value) for key, value in self.vars.items()]

    def build(self, name: str, extra: Iterable[tuple[str, str]] = (), *, prefix: Iterable[tuple[str, str]] = (),
              payload: bytes = b"") -> SimEvent:
        """Create an event (assigning its sequence number) without handing it to anyone."""
        headers = common_headers(self.identity, name, self._next_seq(), self.clock.epoch_us())
        if name == "CHANNEL_HANGUP_COMPLETE":
            headers.append(("Hangup-Cause", self.hangup_cause))
        headers += prefix
        if name == "CHANNEL_DATA":
            headers += self.profile_headers("Channel")
        headers += self._basic(cause=name != "CHANNEL_HANGUP_COMPLETE")
        headers += self.profile_headers("Caller")
        if self.other_leg:
            headers += self.other_leg
        if name not in NO_VARIABLES:
            headers += self.variable_headers()
        headers += extra
        event = SimEvent(name, headers, payload, at=self.clock.now())
        self.events.append(event)
        return event

    def emit(self, name: str, extra: Iterable[tuple[str, str]] = (), *, prefix: Iterable[tuple[str, str]] = (),
             defer: bool = False) -> SimEvent:
        """Create an event and deliver it now, or after the running app completes (``defer``)."""
        event = self.build(name, extra, prefix=prefix)
        if defer:
            self._deferred.append(event)
        else:
            self.deliver(event)
        return event

    def deliver(self, event: SimEvent) -> None:
        sink = self.sink
        if sink is not None:
            sink(event)

    def flush_deferred(self) -> None:
        pending, self._deferred = self._deferred, []
        for event in pending:
            self.deliver(event)

    # ------------------------------------------------------------------ state changes

    def set_call_state(self, new: str) -> None:
        old, self.call_state = self.call_state, new
        if old != new:
            self.emit("CHANNEL_CALLSTATE", prefix=[("Original-Channel-Call-State", old),
                                                    ("Channel-Call-State-Number", str(CALL_STATE_NUMBERS[new]))])

    def set_running_state(self, state: str) -> None:
        self.state = self.running_state = state
        self.emit("CHANNEL_STATE")

    def answer(self) -> bool:
        """Mark the channel answered (CHANNEL_ANSWER, then the call state becomes ACTIVE)."""
        if self.answered_us or self.hung_up:
            return False
        self.answered_us = self.clock.epoch_us()
        self.answered_at = self.clock.now()
        self.answer_state = "answered"
        self.emit("CHANNEL_ANSWER")
        self.set_call_state("ACTIVE")
        self.signal.notify()
        return True

    def hangup(self, cause: str = "NORMAL_CLEARING", *, by: str) -> bool:
        """Hang the channel up (CHANNEL_HANGUP); the session thread then unwinds."""
        if self.hung_up:
            return False
        self.hung_up = True
        self.hangup_cause = cause or "NORMAL_CLEARING"
        self.hangup_by = by
        self.hangup_us = self.clock.epoch_us()
        self.state = "CS_HANGUP"
        self.answer_state = "hangup"
        self.dtmf.clear()
        self.emit("CHANNEL_HANGUP")
        self.signal.notify()
        self._run_down_hooks()
        return True

    def finish_hangup(self) -> None:
        """CS_HANGUP, CS_REPORTING and CHANNEL_HANGUP_COMPLETE (the session thread's last words)."""
        if self.destroyed:
            return
        self.set_running_state("CS_HANGUP")
        self.set_call_state("HANGUP")
        self.set_running_state("CS_REPORTING")
        self._report_variables()
        self.emit("CHANNEL_HANGUP_COMPLETE")
        self.destroyed = True
        self.signal.notify()
        self._run_down_hooks()

    def _run_down_hooks(self) -> None:
        for hook in list(self.down_hooks):
            hook()

    def _report_variables(self) -> None:
        def stamp(us: int) -> str:
            return dt.datetime.fromtimestamp(us / 1e6).strftime("%Y-%m-%d %H:%M:%S") if us else ""

        end_us = self.hangup_us or self.clock.epoch_us()
        bill_us = end_us - self.answered_us if self.answered_us else 0
        total_us = end_us - self.created_us
        answer_us = self.answered_us - self.created_us if self.answered_us else 0
        values: list[tuple[str, str]] = [
            ("hangup_cause", self.hangup_cause), ("hangup_cause_q850", str(Q850.get(self.hangup_cause, 16))),
            ("digits_dialed", "".join(self.digits_dialed) or "none"),
            ("start_stamp", stamp(self.created_us)), ("profile_start_stamp", stamp(self.profile.created_us)),
        ]
        if self.answered_us:
            values.append(("answer_stamp", stamp(self.answered_us)))
        if self.bridged_us:
            values.append(("bridge_stamp", stamp(self.bridged_us)))
        values.append(("end_stamp", stamp(end_us)))
        for name, us in (("start", self.created_us), ("profile_start", self.profile.created_us),
                         ("answer", self.answered_us), ("bridge", self.bridged_us), ("last_hold", 0)):
            values += [(f"{name}_epoch", str(us // 1_000_000)), (f"{name}_uepoch", str(us))]
        values += [("hold_accum_seconds", "0"), ("hold_accum_usec", "0"), ("hold_accum_ms", "0")]
        for name in ("resurrect", "progress", "progress_media"):
            values += [(f"{name}_epoch", "0"), (f"{name}_uepoch", "0")]
        values += [
            ("end_epoch", str(end_us // 1_000_000)), ("end_uepoch", str(end_us)),
            ("last_app", self.vars.get("current_application") or ""),
        ]
        if self.vars.get("current_application_data"):
            values.append(("last_arg", self.vars.get("current_application_data") or ""))
        values += [
            ("caller_id", f'"{self.profile.caller_name}" <{self.profile.caller_number}>'),
        ]
        for unit, divisor in (("sec", 1_000_000), ("msec", 1000), ("usec", 1)):
            duration_name = {"sec": "duration", "msec": "mduration", "usec": "uduration"}[unit]
            values += [
                (duration_name, str(total_us // divisor)), (f"bill{unit}", str(bill_us // divisor)),
                (f"progress{unit}", "0"), (f"answer{unit}", str(answer_us // divisor)), (f"wait{unit}", "0"),
                (f"progress_media{unit}", "0"), (f"flow_bill{unit}", str(total_us // divisor)),
            ]
        values.append(("is_loopback", "1"))
        for key, value in values:
            self.vars.set(key, value)

    def request_transfer(self, extension: str, dialplan: str = "XML", context: str = "default", *,
                         by: str, reason: str = "") -> None:
        """Route the channel to another extension (``switch_ivr_session_transfer``)."""
        if self.hung_up:
            return
        dialplan = dialplan or "XML"
        context = context or "default"
        now_us = self.clock.epoch_us()
        source = f"{now_us // 1_000_000}:{uuidlib.uuid4()}:bl_xfer:{extension}/{context}/{dialplan}"
        old = self.profile
        self.profile = Profile(old.caller_name, old.caller_number, extension, now_us, context=context,
                               dialplan=dialplan, index=old.index + 1, transfer_source=source,
                               rdnis=old.destination)
        if "max_forwards" not in self.vars:
            self.vars.set("max_forwards", "70")
        history = self.vars.get("transfer_history")
        self.vars.set("transfer_history", f"{history}|{source}" if history else source)
        self.vars.set("transfer_source", source)
        self.state = "CS_ROUTING"
        self.transfer_pending = TransferRequest(extension, dialplan, context, by, reason)
        self.signal.notify()

    # ------------------------------------------------------------------ DTMF

    def receive_dtmf(self, dtmf: Dtmf) -> None:
        """A digit arrives from the caller; whatever reads the channel next dequeues it."""
        if self.hung_up:
            return
        self.dtmf.append(dtmf)
        self.signal.notify()

    def dtmf_event(self, dtmf: Dtmf, *, defer: bool = False) -> SimEvent:
        """The DTMF event FreeSWITCH fires when a digit is dequeued."""
        self.digits_dialed.append(dtmf.digit)
        return self.emit("DTMF", [("DTMF-Digit", dtmf.digit), ("DTMF-Duration", str(dtmf.duration_ms * 8)),
                                  ("DTMF-Source", dtmf.source)], defer=defer)

    def drain_dtmf(self) -> None:
        """An idle reader (park, sleep) dequeues every waiting digit."""
        while self.dtmf:
            self.dtmf_event(self.dtmf.popleft())

    def app_event(self, app: str, *, started: bool) -> None:
        """Count an application starting or completing (what a caller may wait for)."""
        (self.apps_started if started else self.apps_completed)[app] += 1
        now = self.clock.now()
        if started:
            self.app_started_at = now
        self.app_times.setdefault((app, started), []).append(now)
        self.signal.notify()

    # ------------------------------------------------------------------ conditions

    @property
    def media_ok(self) -> bool:
        """True while a media application may keep running (``switch_channel_ready``)."""
        return not (self.hung_up or self.transfer_pending or self.reset_requested or self.reset_trap)
