"""The exception family of `esl_controller.simulator`.

    SimulatorError              (an `esl_controller.errors.EslError`) anything the simulator refuses
    ├── SimulatorConfigError    a bad script, dialplan, fault or socket target (also a ValueError),
    │                           e.g. a ``socket`` host that is not on the loopback interface
    └── SimulatorTimeout        `SimCall.wait` ran out of time before the call ended

Failures *of the controller under test* (a wrong reply, a dropped connection) are never raised:
they are what the simulator records in the call's transcript, state and outcome.
"""

from __future__ import annotations

from esl_controller.errors import EslError


class SimulatorError(EslError):
    """Base of every error raised by the FreeSWITCH simulator."""


class SimulatorConfigError(SimulatorError, ValueError):
    """The simulator was given something it cannot simulate."""


class SimulatorTimeout(SimulatorError):
    """The call did not end within the time the caller of `SimCall.wait` allowed."""
