"""The applications the simulated FreeSWITCH knows, by name (`APPS`), and the small ones.

Small ones here: ``answer``, ``pre_answer``, ``ring_ready``, ``set``, ``unset``, ``export``,
``multiset``, ``log``, ``info``, ``sched_cancel``, ``sched_transfer``, ``sched_hangup``,
``flush_dtmf``, ``hangup`` and ``park``.  Media applications are in `media`, `recording` and
`session_recording` (``record_session``),
``transfer``/``bridge`` in `routing`, ``socket`` in `socket_app`.  Any other name is an
unknown application (DESTINATION_OUT_OF_ORDER, trace ``k1``).
"""

from __future__ import annotations

from collections.abc import Mapping

from esl_controller.simulator import media, recording, routing, session_recording, socket_app
from esl_controller.simulator.execution import AppFn, AppHost, park_loop


def answer(host: AppHost, arg: str) -> None:
    if host.channel.answer():
        host.channel.vars.set("endpoint_disposition", "ANSWER")
    return None


def pre_answer(host: AppHost, arg: str) -> None:
    ch = host.channel
    if ch.answer_state == "ringing":
        ch.answer_state = "early"
        ch.emit("CHANNEL_PROGRESS_MEDIA")
    return None


def noop(host: AppHost, arg: str) -> None:
    return None


def set_var(host: AppHost, arg: str) -> None:
    name, sep, value = arg.partition("=")
    if sep and name.strip():
        host.channel.vars.set(name.strip(), value or None)
    return None


def unset_var(host: AppHost, arg: str) -> None:
    if arg.strip():
        host.channel.vars.set(arg.strip(), None)
    return None


def export_var(host: AppHost, arg: str) -> None:
    name, sep, value = arg.partition("=")
    name = name.strip().removeprefix("nolocal:")
    if sep and name:
        host.channel.vars.set(name, value or None)
        exported = [v for v in (host.channel.vars.get("export_vars") or "").split(",") if v]
        if name not in exported:
            exported.append(name)
        host.channel.vars.set("export_vars", ",".join(exported))
    return None


def multiset(host: AppHost, arg: str) -> None:
    delimiter = " "
    if arg.startswith("^^") and len(arg) > 2:
        delimiter, arg = arg[2], arg[3:]
    for pair in arg.split(delimiter):
        set_var(host, pair)
    return None


def _when(host: AppHost, text: str) -> float:
    """Delay in simulated seconds for ``+N`` (relative) or ``N`` (an epoch time)."""
    try:
        if text.startswith("+"):
            return float(text[1:])
        return float(text) - host.clock.epoch()
    except ValueError:
        return 0.0


def sched_transfer(host: AppHost, arg: str) -> None:
    parts = arg.split()
    if len(parts) < 2:
        return None
    ch = host.channel
    extension = parts[1]
    dialplan = parts[2] if len(parts) > 2 else "XML"
    context = parts[3] if len(parts) > 3 else "default"

    def fire() -> None:
        ch.request_transfer(extension, dialplan, context, by="dialplan", reason="watchdog (sched_transfer)")

    host.schedule(ch.uuid, _when(host, parts[0]), fire)
    return None


def sched_hangup(host: AppHost, arg: str) -> None:
    parts = arg.split()
    if not parts:
        return None
    ch = host.channel
    cause = parts[1] if len(parts) > 1 else "ALLOTTED_TIMEOUT"
    host.schedule(ch.uuid, _when(host, parts[0]), lambda: ch.hangup(cause, by="dialplan"))
    return None


def sched_cancel(host: AppHost, arg: str) -> None:
    host.cancel_scheduled(arg.strip() or host.channel.uuid)
    return None


def flush_dtmf(host: AppHost, arg: str) -> None:
    host.channel.dtmf.clear()
    return None


def hangup(host: AppHost, arg: str) -> None:
    host.channel.hangup(arg.strip() or "NORMAL_CLEARING", by=host.origin)
    return None


def park(host: AppHost, arg: str) -> None:
    park_loop(host)
    return None


APPS: Mapping[str, AppFn] = {
    "answer": answer,
    "pre_answer": pre_answer,
    "ring_ready": noop,
    "log": noop,
    "info": noop,
    "set": set_var,
    "unset": unset_var,
    "export": export_var,
    "multiset": multiset,
    "sched_transfer": sched_transfer,
    "sched_hangup": sched_hangup,
    "sched_cancel": sched_cancel,
    "flush_dtmf": flush_dtmf,
    "hangup": hangup,
    "park": park,
    "sleep": media.sleep,
    "playback": media.playback,
    "speak": media.speak,
    "play_and_get_digits": media.play_and_get_digits,
    "record": recording.record,
    "record_session": session_recording.record_session,
    "stop_record_session": session_recording.stop_record_session,
    "transfer": routing.transfer,
    "bridge": routing.bridge,
    "socket": socket_app.socket_app,          # type: ignore[dict-item]  # needs a SocketHost
}
