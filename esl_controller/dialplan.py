"""The FreeSWITCH dialplan that hands calls to our controllers safely (``ivr dialplan``).

Its shape is the one measured in ``shared/FREESWITCH-SAFETY.md``: ``socket_resume=true`` so
a dead controller hands the call back at once, a ``sched_transfer`` start-up watchdog that the
controller cancels right after ``connect``, a host list (``A:port|B:port``, every host with its
own port) tried while the TCP connect fails, ``async full``, and a fallback extension that
clears ``socket_resume``, cancels the watchdog, answers, plays an apology and **bridges** to a
person or queue (never ``park``: losing socket control ends a park).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

_HOST = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True, slots=True)
class DialplanSpec:
    domain_uuid: str
    domain_name: str
    number: str                                   # destination number (regex-escaped when printed)
    hosts: tuple[str, ...] = ("127.0.0.1:8084",)
    fallback_bridge: str = "user/1000@${domain_name}"
    fallback_prompt: str = "ivr/ivr-please_hold_while_party_contacted.wav"
    fallback_extension: str = "ivr_fallback"
    context: str = "default"
    watchdog_seconds: int = 15


def _check(spec: DialplanSpec) -> None:
    if not spec.hosts:
        raise ValueError("at least one controller host:port is needed")
    for host in spec.hosts:
        if not _HOST.match(host):
            raise ValueError(f"controller {host!r} must be host:port (a host without a port inherits the "
                             "previous one in FreeSWITCH's list)")
    if not spec.number:
        raise ValueError("a destination number is needed")
    if spec.fallback_bridge.startswith("park") or not spec.fallback_bridge:
        raise ValueError("the fallback must bridge to a person or queue, not park")


def _action(app: str, data: str | None = None) -> str:
    if data is None:
        return f'    <action application="{app}"/>'
    return f'    <action application="{app}" data={quoteattr(data)}/>'


def render_dialplan(spec: DialplanSpec) -> str:
    """The XML for one tenant's number and the shared fallback extension."""
    _check(spec)
    fallback = f"{spec.fallback_extension} XML {spec.context}"
    number = re.escape(spec.number)
    lines = [
        f'<extension name={quoteattr("ivr_" + spec.domain_name)}>',
        f'  <condition field="destination_number" expression={quoteattr("^" + number + "$")}>',
        _action("set", f"domain_uuid={spec.domain_uuid}"),
        _action("set", f"domain_name={spec.domain_name}"),
        _action("set", "socket_resume=true"),
        "    <!-- start-up watchdog: the controller cancels it right after connect -->",
        _action("sched_transfer", f"+{int(spec.watchdog_seconds)} {fallback}"),
        _action("socket", "|".join(spec.hosts) + " async full"),
        "    <!-- reached when no controller answered, or one died or handed the call back -->",
        _action("transfer", fallback),
        "  </condition>",
        "</extension>",
        f"<extension name={quoteattr(spec.fallback_extension)}>",
        f'  <condition field="destination_number" expression={quoteattr("^" + spec.fallback_extension + "$")}>',
        _action("unset", "socket_resume"),
        _action("sched_cancel"),
        _action("answer"),
        _action("playback", spec.fallback_prompt),
        _action("bridge", spec.fallback_bridge),
        "  </condition>",
        "</extension>",
    ]
    return "\n".join(lines) + "\n"
