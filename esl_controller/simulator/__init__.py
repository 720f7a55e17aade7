"""A FreeSWITCH 1.10 simulator for tests, benchmarks and ``ivr call simulate``.

It plays FreeSWITCH's side of the outbound Event Socket: it **dials into** a controller over
TCP (as the ``socket`` dialplan app does), answers the way the real traces in
``shared/fixtures/esl-traces`` show (the encoders of `esl_controller.protocol` reproduce
their frames byte for byte), simulates the applications a controller uses, plays a scripted
caller, and keeps a transcript of every command it received.  It is gevent-based and never
monkey-patches (entry points and tests do); it only ever connects to loopback addresses, and
every wait has a timeout.

Usage::

    sim = FreeSwitchSimulator(speed=50, path_map={"/srv/peer/audio": AUDIO})
    call = sim.place_call(socket_data="127.0.0.1:8084 async full", destination="5000",
                          domain_uuid=TENANT, domain_name="tenant-a.example",
                          caller=CallerScript([WaitForApp("playback"), Press("1"), Hangup()]))
    outcome = call.wait(timeout=10)          # CallOutcome, e.g. controller_hangup(cause=…)
    call.commands()                          # ["connect", "sendmsg execute sched_cancel", …]
    call.state.heard_what, call.state.recordings, call.events_sent, call.transcript

    run_call("127.0.0.1", 8084, speed=50, caller=CallerScript([...]))   # place + wait

Time: ``speed`` scales every simulated duration (prompts, digit timeouts, record limits,
linger, the 25 s first-command limit, ``sched_transfer``, the caller's waits); values
reported to the controller (``playback_ms``, ``record_ms``, timestamps) are simulated time.

What is modelled (module by module): the wire and subscriptions (`listener`, `events`,
`commands`, `api`), the channel and its variables (`channel`), application execution and
park (`execution`), the applications (`apps`, `media`, `recording`, `routing`, `socket_app`),
the dialplan with the behaviours of ``shared/FREESWITCH-SAFETY.md`` — host-list failover,
``socket_resume``, the CS_RESET trap, the start-up watchdog, the 25 s first-command limit —
(`dialplan`, `socket_app`), the caller (`caller`, `audio`), fault injection (`faults`), and
the call's outcome (`call`).

Known simplifications, each documented where it lives: ``sendmsg`` executes without
``event-lock`` run in FIFO order (real FreeSWITCH nests them, LIFO, trace ``b2``); only this
call's channel exists (no A-leg events even without ``myevents``, trace ``a3``);
PRIVATE_COMMAND events are not generated; CHANNEL_PARK is delivered once the controller
subscribes to it (on the wire its position races with the first replies).
"""

from esl_controller.simulator.call import CallOutcome, CallState, SimCall
from esl_controller.simulator.caller import (
    CallerScript,
    Hangup,
    Press,
    Silence,
    Speak,
    Wait,
    WaitForApp,
    WaitForCommand,
)
from esl_controller.simulator.commands import ReceivedCommand
from esl_controller.simulator.dialplan import BridgeTarget, DialplanSpec
from esl_controller.simulator.errors import SimulatorConfigError, SimulatorError, SimulatorTimeout
from esl_controller.simulator.events import SimEvent
from esl_controller.simulator.faults import Faults
from esl_controller.simulator.records import BridgeAttempt, ConnectAttempt, Heard, Recording, SentFrame
from esl_controller.simulator.simulator import FreeSwitchSimulator, run_call

__all__ = [
    "BridgeAttempt",
    "BridgeTarget",
    "CallOutcome",
    "CallState",
    "CallerScript",
    "ConnectAttempt",
    "DialplanSpec",
    "Faults",
    "FreeSwitchSimulator",
    "Hangup",
    "Heard",
    "Press",
    "ReceivedCommand",
    "Recording",
    "SentFrame",
    "Silence",
    "SimCall",
    "SimEvent",
    "SimulatorConfigError",
    "SimulatorError",
    "SimulatorTimeout",
    "Speak",
    "Wait",
    "WaitForApp",
    "WaitForCommand",
    "run_call",
]
