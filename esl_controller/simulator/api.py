"""The ``api`` commands the simulator understands, with FreeSWITCH 1.10's answers.

``uuid_break`` (``all`` also drops queued executes), ``uuid_exists``, ``uuid_getvar``,
``uuid_setvar``, ``uuid_transfer``, ``uuid_kill``, ``uuid_send_dtmf`` and ``uuid_recv_dtmf``.
A uuid may name this call's channel (the leg the controller drives), the caller's leg
(``variable_other_loopback_leg_uuid``: killing it is the caller hanging up, DTMF sent to it
reaches the controlled leg like the traces' caller side) or another live simulated call.
Any other command: ``-ERR <cmd> Command not found!``.
"""

from __future__ import annotations

from typing import Protocol

from esl_controller.simulator.channel import Channel, Dtmf

NO_CHANNEL = "-ERR No such channel!\n"
NO_SESSION = "-ERR Cannot locate session!\n"


class ApiHost(Protocol):
    def lookup(self, uuid: str) -> tuple[Channel, str] | None:
        """The live channel a uuid names and which leg: ``"b"`` (controlled) or ``"a"`` (caller)."""
        ...


def parse_digits(text: str) -> list[Dtmf]:
    """``"1234#"`` or ``"9@400"`` (a duration in ms for the digits before the ``@``)."""
    digits, _, duration = text.partition("@")
    ms = int(duration) if duration.isdigit() else 250
    return [Dtmf(d, ms) for d in digits if d in "0123456789*#ABCDabcd"]


def run_api(host: ApiHost, command: str, arg: str | None) -> str:
    args = (arg or "").split()
    name = command.strip()
    if name not in _COMMANDS:
        return f"-ERR {name} Command not found!\n"
    return _COMMANDS[name](host, args)


def _target(host: ApiHost, args: list[str]) -> tuple[Channel, str] | None:
    return host.lookup(args[0]) if args else None


def _uuid_break(host: ApiHost, args: list[str]) -> str:
    found = _target(host, args)
    if found is None:
        return NO_CHANNEL
    channel, leg = found
    if leg == "b":
        channel.break_flag = True
        if len(args) > 1 and args[1].lower() == "all":
            channel.app_queue.clear()
        channel.signal.notify()
    return "+OK\n"


def _uuid_exists(host: ApiHost, args: list[str]) -> str:
    return "true" if _target(host, args) is not None else "false"


def _uuid_getvar(host: ApiHost, args: list[str]) -> str:
    found = _target(host, args)
    if found is None:
        return NO_CHANNEL
    if len(args) < 2:
        return "-USAGE: <uuid> <var>\n"
    value = found[0].vars.get(args[1]) if found[1] == "b" else None
    return "_undef_" if value is None else value


def _uuid_setvar(host: ApiHost, args: list[str]) -> str:
    found = _target(host, args)
    if found is None:
        return NO_CHANNEL
    if len(args) < 2:
        return "-USAGE: <uuid> <var> [value]\n"
    if found[1] == "b":
        found[0].vars.set(args[1], " ".join(args[2:]) or None)
    return "+OK\n"


def _uuid_transfer(host: ApiHost, args: list[str]) -> str:
    found = _target(host, args)
    if found is None:
        return NO_CHANNEL
    rest = [a for a in args[1:] if a not in ("-bleg", "-both")]
    if not rest:
        return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
    if found[1] == "b":
        found[0].request_transfer(rest[0], rest[1] if len(rest) > 1 else "XML",
                                  rest[2] if len(rest) > 2 else "default", by="controller",
                                  reason="uuid_transfer")
    return "+OK\n"


def _uuid_kill(host: ApiHost, args: list[str]) -> str:
    found = _target(host, args)
    if found is None:
        return NO_CHANNEL
    channel, leg = found
    if leg == "b":
        channel.hangup(args[1] if len(args) > 1 else "NORMAL_CLEARING", by="controller")
    else:
        channel.hangup("NORMAL_CLEARING", by="caller")
    return "+OK\n"


def _uuid_send_dtmf(host: ApiHost, args: list[str]) -> str:
    found = _target(host, args)
    if found is None or len(args) < 2:
        return NO_SESSION
    channel, leg = found
    if leg == "a":
        for dtmf in parse_digits(args[1]):
            channel.receive_dtmf(dtmf)
    else:
        channel.dtmf_sent.append(args[1])
    return "+OK Success\n"


def _uuid_recv_dtmf(host: ApiHost, args: list[str]) -> str:
    found = _target(host, args)
    if found is None or len(args) < 2:
        return NO_SESSION
    channel, leg = found
    if leg == "b":
        for dtmf in parse_digits(args[1]):
            channel.receive_dtmf(Dtmf(dtmf.digit, dtmf.duration_ms, "APP"))
    return "+OK Success\n"


_COMMANDS = {
    "uuid_break": _uuid_break,
    "uuid_exists": _uuid_exists,
    "uuid_getvar": _uuid_getvar,
    "uuid_setvar": _uuid_setvar,
    "uuid_transfer": _uuid_transfer,
    "uuid_kill": _uuid_kill,
    "uuid_send_dtmf": _uuid_send_dtmf,
    "uuid_recv_dtmf": _uuid_recv_dtmf,
}
