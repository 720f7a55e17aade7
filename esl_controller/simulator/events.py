"""FreeSWITCH events as the simulator sends them, and who gets which.

Header layout follows the traces of ``shared/fixtures/esl-traces``: the common block
(``Event-Name`` … ``Event-Sequence``), the channel's basic data (``Channel-State`` …
``Channel-Write-Codec-Bit-Rate``), the ``Caller-*`` profile, then ``variable_*`` channel
variables in the order the channel set them, then the event's own headers
(``Application``, ``DTMF-Digit``, ``Playback-File-Path``…).  CHANNEL_STATE, CHANNEL_CALLSTATE
and DTMF carry no variables; CHANNEL_HANGUP_COMPLETE puts ``Hangup-Cause`` first.

`Subscription` is the listener's event list: ``myevents`` (the fixed set below, only this
channel's events), ``event plain …``, ``nixevent``, ``noevents`` and ``filter``, with the
replies FreeSWITCH 1.10 gives (``mod_event_socket.c``).  Events are always sent as
``text/event-plain``: ``event json``/``event xml`` are accepted but not rendered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from esl_controller.protocol import encode_event

EVENT_NAMES = frozenset({
    "CUSTOM", "CLONE", "CHANNEL_CREATE", "CHANNEL_DESTROY", "CHANNEL_STATE", "CHANNEL_CALLSTATE",
    "CHANNEL_ANSWER", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
    "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_OUTGOING", "CHANNEL_PARK", "CHANNEL_UNPARK",
    "CHANNEL_APPLICATION", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "API", "LOG", "INBOUND_CHAN",
    "OUTBOUND_CHAN", "STARTUP", "SHUTDOWN", "PUBLISH", "UNPUBLISH", "TALK", "NOTALK", "SESSION_CRASH",
    "MODULE_LOAD", "MODULE_UNLOAD", "DTMF", "MESSAGE", "PRESENCE_IN", "NOTIFY_IN", "PRESENCE_OUT",
    "PRESENCE_PROBE", "MESSAGE_WAITING", "MESSAGE_QUERY", "ROSTER", "CODEC", "BACKGROUND_JOB",
    "DETECTED_SPEECH", "DETECTED_TONE", "PRIVATE_COMMAND", "HEARTBEAT", "TRAP", "ADD_SCHEDULE",
    "DEL_SCHEDULE", "EXE_SCHEDULE", "RE_SCHEDULE", "RELOADXML", "NOTIFY", "PHONE_FEATURE",
    "PHONE_FEATURE_SUBSCRIBE", "SEND_MESSAGE", "RECV_MESSAGE", "REQUEST_PARAMS", "CHANNEL_DATA",
    "GENERAL", "COMMAND", "SESSION_HEARTBEAT", "CLIENT_DISCONNECTED", "SERVER_DISCONNECTED",
    "SEND_INFO", "RECV_INFO", "RECV_RTCP_MESSAGE", "SEND_RTCP_MESSAGE", "CALL_SECURE", "NAT",
    "RECORD_START", "RECORD_STOP", "PLAYBACK_START", "PLAYBACK_STOP", "CALL_UPDATE", "FAILURE",
    "SOCKET_DATA", "MEDIA_BUG_START", "MEDIA_BUG_STOP", "CONFERENCE_DATA_QUERY", "CONFERENCE_DATA",
    "CALL_SETUP_REQ", "CALL_SETUP_RESULT", "CALL_DETAIL", "DEVICE_STATE", "TEXT", "SHUTDOWN_REQUESTED",
    "ALL"
})

# mod_event_socket.c, "myevents".
MYEVENTS = frozenset({
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE", "CHANNEL_DATA",
    "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_OUTGOING", "CHANNEL_PARK",
    "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_STATE", "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK",
    "DETECTED_SPEECH", "DTMF", "NOTALK", "TALK"
})

# Event-Calling-File / -Function / -Line-Number as FreeSWITCH 1.10.12 reports them.
CALLING: dict[str, tuple[str, str, int]] = {
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", 1572),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3846),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1689),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", 301),
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", 2021),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2944),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2967),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3445),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", 943),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1002),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", 2408),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1879),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1213),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", 677),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", 1646),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", 2020),
    "RECORD_START": ("switch_ivr_play_say.c", "switch_ivr_record_file_event", 767),
    "RECORD_STOP": ("switch_ivr_play_say.c", "switch_ivr_record_file_event", 1030),
}
_DEFAULT_CALLING = ("switch_event.c", "switch_event_fire_detailed", 0)

# Events that carry no channel variables.
NO_VARIABLES = frozenset({"CHANNEL_STATE", "CHANNEL_CALLSTATE", "DTMF"})


@dataclass(slots=True)
class SimEvent:
    """One event the simulator generated (sent or not, depending on subscriptions)."""

    name: str
    headers: list[tuple[str, str]]
    payload: bytes = b""
    at: float = 0.0                      # simulated seconds since the call was placed
    delivered: bool = False

    def get(self, key: str, default: str | None = None) -> str | None:
        for name, value in self.headers:
            if name == key:
                return value
        return default

    def encode(self) -> bytes:
        return encode_event(self.headers, self.payload)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this FreeSWITCH is (the common header block)."""

    core_uuid: str
    hostname: str = "sim"
    ipv4: str = "127.0.0.1"
    ipv6: str = "::1"


def common_headers(identity: Identity, name: str, seq: int, epoch_us: int) -> list[tuple[str, str]]:
    stamp = dt.datetime.fromtimestamp(epoch_us / 1e6, tz=dt.UTC)
    local = stamp.astimezone()
    file, function, line = CALLING.get(name, _DEFAULT_CALLING)
    return [
        ("Event-Name", name),
        ("Core-UUID", identity.core_uuid),
        ("FreeSWITCH-Hostname", identity.hostname),
        ("FreeSWITCH-Switchname", identity.hostname),
        ("FreeSWITCH-IPv4", identity.ipv4),
        ("FreeSWITCH-IPv6", identity.ipv6),
        ("Event-Date-Local", local.strftime("%Y-%m-%d %H:%M:%S")),
        ("Event-Date-GMT", stamp.strftime("%a, %d %b %Y %H:%M:%S GMT")),
        ("Event-Date-Timestamp", str(epoch_us)),
        ("Event-Calling-File", file),
        ("Event-Calling-Function", function),
        ("Event-Calling-Line-Number", str(line)),
        ("Event-Sequence", str(seq)),
    ]


@dataclass(slots=True)
class Subscription:
    """A listener's event subscription (``LFLAG_EVENTS``, ``LFLAG_MYEVENTS``, the event list)."""

    events_on: bool = False
    myevents: bool = False
    types: set[str] = field(default_factory=set)
    custom: set[str] = field(default_factory=set)
    filters: list[tuple[str, str]] = field(default_factory=list)
    format: str = "plain"

    def enable_myevents(self) -> str:
        if self.myevents:
            return "-ERR aready enabled."          # FreeSWITCH's own spelling
        self.types |= MYEVENTS
        self.myevents = True
        self.events_on = True
        return "+OK Events Enabled"

    def add(self, words: Iterable[str]) -> str:
        """``event <format> NAME …``: unknown names are skipped; none known is an error."""
        keys = 0
        custom = False
        for index, word in enumerate(words):
            if index == 0 and word.lower() in ("plain", "xml", "json"):
                self.format = word.lower()
                continue
            if custom:
                self.custom.add(word)
                continue
            name = word.upper()
            if name not in EVENT_NAMES:
                continue
            keys += 1
            if name == "ALL":
                self.types |= EVENT_NAMES
            self.types.add(name)
            custom = name == "CUSTOM"
        if not keys:
            return "-ERR no keywords supplied"
        self.events_on = True
        return f"+OK event listener enabled {self.format}"

    def remove(self, words: Iterable[str]) -> str:
        keys = 0
        custom = False
        for word in words:
            if custom:
                self.custom.discard(word)
                continue
            name = word.upper()
            if name not in EVENT_NAMES:
                continue
            keys += 1
            if name == "CUSTOM":
                custom = True
            elif name == "ALL":
                self.types.clear()
            else:
                if "ALL" in self.types:
                    self.types = set(EVENT_NAMES) - {"ALL"}
                self.types.discard(name)
        if not keys:
            return "-ERR no keywords supplied"
        self.events_on = True
        return "+OK events nixed"

    def clear(self) -> str:
        if not self.events_on:
            return "-ERR not listening for events"
        self.events_on = False
        self.types.clear()
        self.custom.clear()
        return "+OK no longer listening for events"

    def add_filter(self, args: str) -> str:
        name, _, value = args.strip().partition(" ")
        if name.lower() == "delete" and value:
            target, _, target_value = value.partition(" ")
            if target.lower() == "all":
                self.filters.clear()
            else:
                self.filters = [(k, v) for k, v in self.filters
                                if not (k.lower() == target.lower() and (not target_value or v == target_value))]
            return f"+OK filter deleted. [{target}][{target_value}]"
        if not value:
            return "-ERR invalid syntax"
        if name.lower() == "add":
            name, _, value = value.partition(" ")
        self.filters.append((name, value))
        return f"+OK filter added. [{name}]=[{value}]"

    def covers(self, name: str) -> bool:
        return self.events_on and ("ALL" in self.types or name in self.types)

    def wants(self, event: SimEvent, channel_uuid: str) -> bool:
        if not self.events_on:
            return False
        if "ALL" not in self.types and event.name not in self.types:
            return False
        if self.filters:
            lowered = {k.lower(): v for k, v in event.headers}
            if not any(lowered.get(k.lower(), "").lower() == v.lower() for k, v in self.filters):
                return False
        if self.myevents:
            if event.name == "BACKGROUND_JOB":
                return event.get("Job-Owner-UUID") == channel_uuid
            return event.get("Unique-ID") == channel_uuid
        return True
