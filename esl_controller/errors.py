"""The exception family of `esl_controller`.

    EslError                      anything that went wrong on the Event Socket
    ├── ProtocolError             bytes that are not ESL (malformed header, bad Content-Length,
    │                             oversize frame); the connection is closed, other calls go on
    ├── CommandError              FreeSWITCH answered ``-ERR …`` (``reply`` holds the text)
    ├── CommandTimeout            no reply / completion within the wait's timeout
    ├── SyncModeRefused           the dialplan ran ``socket`` without ``async`` (we need async full)
    └── CallGone                  the caller hung up or the socket closed: every waiter wakes
                                  with it.  It is also an `ivr_flows.CallEnded` (the flow unwinds
                                  as an outcome) and a greenswitch ``OutboundSessionHasGoneAway``
                                  (code written against greenswitch keeps working).
        └── ControlLost           the call left our socket application without us (FreeSWITCH's
                                  start-up watchdog or our dead-man's switch moved it while this
                                  process was hung, or someone else transferred it): the caller
                                  is still there but no longer ours to touch
"""

from __future__ import annotations

from greenswitch.esl import OutboundSessionHasGoneAway

from ivr_flows.call import CallEnded


class EslError(Exception):
    """Base of every error raised by the Event Socket layer."""


class ProtocolError(EslError):
    """The peer sent bytes that are not a valid ESL frame."""


class CommandError(EslError):
    """FreeSWITCH answered a command with ``-ERR``."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__(f"{command!r} failed: {reply}")
        self.command = command
        self.reply = reply


class CommandTimeout(EslError):
    """A reply or an application completion did not arrive in time."""


class SyncModeRefused(EslError):
    """The socket is not in async mode; the controller refuses to drive the call."""


class CallGone(EslError, CallEnded, OutboundSessionHasGoneAway):
    """The call is over: the caller hung up or the socket closed."""

    def __init__(self, reason: str = "hangup", cause: str = "") -> None:
        super().__init__(f"call gone: {reason}" + (f" ({cause})" if cause else ""))
        self.reason = reason
        self.cause = cause


class ControlLost(CallGone):
    """The call is no longer in our ``socket`` application; it must be let go, not touched."""

    def __init__(self, where: str = "") -> None:
        super().__init__("control lost", where)
        self.where = where
