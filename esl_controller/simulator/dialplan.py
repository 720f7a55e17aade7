"""The dialplan the simulated channel runs, and the far ends a ``bridge`` reaches.

`DialplanSpec` lists the actions of the dialled extension as ``(application, data)``
pairs, e.g. the shipped one of ``shared/FREESWITCH-SAFETY.md`` (`DialplanSpec.shipped`):
``set`` the tenant and ``socket_resume``, ``sched_transfer +15 ivr_fallback XML default``
(the start-up watchdog), ``socket A:port|B:port async full``, then
``transfer ivr_fallback XML default`` for when no controller took or kept the call.
``extensions`` gives the actions of the extensions a transfer can reach; one that is not
listed answers and parks (the caller waits there, and the outcome records where).

`run_dialplan` is the session thread's dialplan loop: actions in order until the channel
hangs up, is transferred (then the target extension's actions, after CHANNEL_STATE
CS_ROUTING and CS_EXECUTE), or falls into the CS_RESET trap (dead air).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from esl_controller.simulator.channel import TransferRequest
from esl_controller.simulator.execution import AppHost, execute

Action = tuple[str, str]
DEFAULT_EXTENSION: tuple[Action, ...] = (("answer", ""), ("park", ""))


@dataclass(frozen=True, slots=True)
class BridgeTarget:
    """How the far end of a ``bridge`` behaves."""

    answer: bool = True
    ring_seconds: float = 1.0
    talk_seconds: float | None = None       # far end hangs up after this; None = when the caller does
    fail_cause: str = "NO_ANSWER"           # when it does not answer: USER_BUSY, NO_ANSWER, CALL_REJECTED…
    far_end_cause: str = "NORMAL_CLEARING"


@dataclass(frozen=True, slots=True)
class DialplanSpec:
    """The dialled extension's actions and the other extensions transfers can reach."""

    actions: tuple[Action, ...] = ()
    extensions: Mapping[str, Sequence[Action]] = field(default_factory=dict)

    @classmethod
    def socket_only(cls, socket_data: str) -> DialplanSpec:
        """Like the trace captures' extension 5000: just the ``socket`` app."""
        return cls((("socket", socket_data),))

    @classmethod
    def shipped(cls, hosts: Sequence[str] = ("127.0.0.1:8084",), *, mode: str = "async full",
                watchdog_seconds: int = 15, fallback: str = "ivr_fallback",
                operator: str = "loopback/operator/default",
                fallback_prompt: str = "silence_stream://500") -> DialplanSpec:
        """The dialplan of FREESWITCH-SAFETY.md (tenant variables come from ``place_call``)."""
        return cls(
            (
                ("set", "socket_resume=true"),
                ("sched_transfer", f"+{watchdog_seconds} {fallback} XML default"),
                ("socket", f"{'|'.join(hosts)} {mode}"),
                ("transfer", f"{fallback} XML default"),
            ),
            {fallback: (("unset", "socket_resume"), ("sched_cancel", ""), ("answer", ""),
                        ("playback", fallback_prompt), ("bridge", operator))},
        )


class DialplanHost(AppHost, Protocol):
    def extension_actions(self, extension: str) -> Sequence[Action]: ...
    def on_transfer(self, request: TransferRequest) -> None: ...
    def dead_air(self, kind: str) -> None: ...


def run_dialplan(host: DialplanHost, actions: Sequence[Action], *,
                 before_action: Callable[[], None] | None = None) -> None:
    """Run the extension's actions, following transfers, until there is nothing left."""
    ch = host.channel
    current: Sequence[Action] = actions
    while True:
        for app, data in current:
            if ch.hung_up or ch.transfer_pending or ch.reset_trap:
                break
            if before_action is not None:
                before_action()
            execute(host, app, data)
        if ch.hung_up:
            return
        if ch.reset_trap:
            host.dead_air("cs_reset")
            return
        request = ch.transfer_pending
        if request is None:
            return
        ch.transfer_pending = None
        ch.reset_requested = False
        host.on_transfer(request)
        ch.vars.set("call_uuid", ch.uuid)
        answered = bool(ch.answered_us)
        ch.call_state = "RINGING"
        ch.set_running_state("CS_ROUTING")
        ch.call_state = "ACTIVE" if answered else "RINGING"
        ch.set_running_state("CS_EXECUTE")
        current = host.extension_actions(request.extension)
