"""The FreeSWITCH dialplan that hands calls to our controllers safely (``ivr dialplan``).

Its shape is the one measured on a real FreeSWITCH (``docs/freeswitch.md``): ``socket_resume=true``
so a dead controller hands the call back at once, a ``sched_transfer`` start-up watchdog that the
controller cancels right after ``connect``, a host list (``A:port|B:port``, every host with its
own port) tried while the TCP connect fails, ``async full``, and a fallback extension that
clears ``socket_resume``, cancels the watchdog, answers, plays an apology and **bridges** to a
person or queue (never ``park``: losing socket control ends a park).

Two layouts, each printed as a file FreeSWITCH loads as it is (an ``<include>`` document):

- ``plain``: the two ``<extension>``s, for a context's include folder of a stock FreeSWITCH
  (``conf/dialplan/default/ivr-<domain>.xml`` for context ``default``; ``--context`` names
  another). The watchdog and the fallback transfer stay in that context.
- ``fusionpbx``: one ``<context name="<domain_name>">`` holding both extensions, as FusionPBX
  keeps one context per tenant domain (``conf/dialplan/<domain_name>.xml`` or wherever the
  installation includes whole contexts). The fallback is the tenant's own.

The controller itself transfers to ``ivr_fallback`` in the context the call is in (the
connect reply's ``Caller-Context``), so the same controller serves both layouts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

_HOST = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
LAYOUTS = ("plain", "fusionpbx")


@dataclass(frozen=True, slots=True)
class DialplanSpec:
    domain_uuid: str
    domain_name: str
    number: str                                   # destination number (regex-escaped when printed)
    hosts: tuple[str, ...] = ("127.0.0.1:8084",)
    fallback_bridge: str = "user/1000@${domain_name}"
    fallback_prompt: str = "ivr/ivr-please_hold_while_party_contacted.wav"
    fallback_extension: str = "ivr_fallback"
    context: str = "default"                      # plain layout: the context the file is included in
    watchdog_seconds: int = 15
    layout: str = "plain"

    @property
    def call_context(self) -> str:
        """The context the call, the watchdog and the fallback live in."""
        return self.domain_name if self.layout == "fusionpbx" else self.context


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
    if spec.layout not in LAYOUTS:
        raise ValueError(f"layout {spec.layout!r} is not one of {', '.join(LAYOUTS)}")
    if not _CONTEXT.match(spec.call_context):
        raise ValueError(f"context {spec.call_context!r} is not a FreeSWITCH context name")
    if not 1 <= spec.watchdog_seconds <= 60:
        raise ValueError("the start-up watchdog must be 1-60 seconds (FreeSWITCH waits 25 s for connect data)")


def _action(app: str, data: str | None = None) -> str:
    if data is None:
        return f'<action application="{app}"/>'
    return f'<action application="{app}" data={quoteattr(data)}/>'


def _extensions(spec: DialplanSpec) -> list[str]:
    fallback = f"{spec.fallback_extension} XML {spec.call_context}"
    number = re.escape(spec.number)
    return [
        f'<extension name={quoteattr("ivr_" + spec.domain_name)}>',
        f'  <condition field="destination_number" expression={quoteattr("^" + number + "$")}>',
        "    " + _action("set", f"domain_uuid={spec.domain_uuid}"),
        "    " + _action("set", f"domain_name={spec.domain_name}"),
        "    " + _action("set", "socket_resume=true"),
        "    <!-- start-up watchdog: the controller cancels it right after connect -->",
        "    " + _action("sched_transfer", f"+{int(spec.watchdog_seconds)} {fallback}"),
        "    " + _action("socket", "|".join(spec.hosts) + " async full"),
        "    <!-- reached when no controller answered, or one died or handed the call back -->",
        "    " + _action("transfer", fallback),
        "  </condition>",
        "</extension>",
        f"<extension name={quoteattr(spec.fallback_extension)}>",
        f'  <condition field="destination_number" expression={quoteattr("^" + spec.fallback_extension + "$")}>',
        "    " + _action("unset", "socket_resume"),
        "    <!-- cancels the start-up watchdog and the controller's dead-man's switch -->",
        "    " + _action("sched_cancel"),
        "    " + _action("answer"),
        "    " + _action("playback", spec.fallback_prompt),
        "    " + _action("bridge", spec.fallback_bridge),
        "  </condition>",
        "</extension>",
    ]


def render_dialplan(spec: DialplanSpec) -> str:
    """The XML file for one tenant's number and its fallback extension, in the spec's layout."""
    _check(spec)
    body = _extensions(spec)
    if spec.layout == "fusionpbx":
        head = [f"<!-- FusionPBX layout: the context of tenant {spec.domain_name} -->",
                f"<context name={quoteattr(spec.domain_name)}>"]
        body = [*head, *("  " + line for line in body), "</context>"]
    else:
        body = [f"<!-- include this file in context {spec.context!r} "
                f"(for example conf/dialplan/{spec.context}/ivr-{spec.domain_name}.xml) -->", *body]
    lines = ["<include>", *("  " + line for line in body), "</include>"]
    return "\n".join(lines) + "\n"
