"""`FreeSwitchSimulator`: the simulated FreeSWITCH that places calls into a controller.

It owns what FreeSWITCH shares between calls: its identity (``Core-UUID``), the event
sequence counter, session ids, where prompt files are found (``prompt_root`` for relative
paths, ``path_map`` for absolute prefixes such as the traces' ``/srv/peer/audio``) and where
recordings go, and the registry of live calls (so ``uuid_exists`` or ``sendmsg <uuid>`` can
name another simulated call).
"""

from __future__ import annotations

import itertools
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from esl_controller.simulator.call import SimCall
from esl_controller.simulator.caller import CallerScript
from esl_controller.simulator.channel import Channel
from esl_controller.simulator.commands import ReceivedCommand
from esl_controller.simulator.dialplan import Action, BridgeTarget, DialplanSpec
from esl_controller.simulator.errors import SimulatorConfigError
from esl_controller.simulator.events import Identity
from esl_controller.simulator.faults import Faults
from esl_controller.simulator.records import SentFrame
from esl_controller.simulator.socket_app import check_loopback


class FreeSwitchSimulator:
    """A simulated FreeSWITCH 1.10 that dials calls into an outbound Event Socket server."""

    def __init__(self, speed: float = 1.0, prompt_root: str | Path | None = None, *,
                 path_map: Mapping[str, str | Path] | None = None, recordings_dir: str | Path | None = None,
                 bridge_targets: Mapping[str, BridgeTarget] | None = None, hostname: str = "sim",
                 max_linger: float = 600.0, connect_timeout: float = 5.0) -> None:
        if not speed > 0:
            raise SimulatorConfigError(f"speed must be > 0, got {speed!r}")
        self.speed = float(speed)
        self.prompt_root = Path(prompt_root) if prompt_root is not None else None
        self.path_map = sorted(((prefix, Path(target)) for prefix, target in (path_map or {}).items()),
                               key=lambda item: -len(item[0]))
        self.recordings_dir = Path(recordings_dir) if recordings_dir is not None else None
        self.bridge_targets = dict(bridge_targets or {})
        self.identity = Identity(str(uuidlib.uuid4()), hostname)
        self.max_linger = max_linger
        self.connect_timeout = connect_timeout
        self.calls: dict[str, SimCall] = {}
        self._seq = itertools.count(1)
        self._session_ids = itertools.count(1)

    # ------------------------------------------------------------------ calls

    def place_call(self, socket_data: str = "127.0.0.1:8084 async full", destination: str = "5000",
                   caller_number: str = "5551234", caller_name: str = "TestCaller", *,
                   domain_uuid: str | None = None, domain_name: str | None = None,
                   variables: Mapping[str, str] | None = None, dialplan: DialplanSpec | None = None,
                   caller: CallerScript | None = None, extensions: Mapping[str, Sequence[Action]] | None = None,
                   bridge_targets: Mapping[str, BridgeTarget] | None = None, faults: Faults | None = None,
                   on_command: Callable[[ReceivedCommand], None] | None = None,
                   on_frame: Callable[[SentFrame], None] | None = None) -> SimCall:
        """Start a call; it runs in its own greenlet.  ``dialplan`` defaults to just
        ``socket <socket_data>``; the tenant and ``variables`` are ``set`` before it runs."""
        spec = dialplan or DialplanSpec.socket_only(socket_data)
        extension_map = dict(extensions or {})
        for app, data in (*spec.actions, *(a for acts in {**spec.extensions, **extension_map}.values() for a in acts)):
            if app == "socket":
                check_loopback(data)
        setup: list[Action] = []
        if domain_uuid is not None:
            setup.append(("set", f"domain_uuid={domain_uuid}"))
        if domain_name is not None:
            setup.append(("set", f"domain_name={domain_name}"))
        setup += [("set", f"{key}={value}") for key, value in (variables or {}).items()]
        call = SimCall(self, destination=destination, caller_number=caller_number, caller_name=caller_name,
                       setup=setup, dialplan=spec, caller=caller, extensions=extension_map,
                       bridge_targets={**self.bridge_targets, **(bridge_targets or {})},
                       faults=faults or Faults(), on_command=on_command, on_frame=on_frame)
        self.calls[call.uuid] = call
        return call.start()

    def forget(self, call: SimCall) -> None:
        self.calls.pop(call.uuid, None)

    def lookup(self, uuid: str) -> tuple[Channel, str] | None:
        for call in self.calls.values():
            channel = call.channel
            if channel.destroyed:
                continue
            if uuid == channel.uuid:
                return channel, "b"
            if uuid == channel.a_leg_uuid and not channel.hung_up:
                return channel, "a"
        return None

    # ------------------------------------------------------------------ shared state

    def next_seq(self) -> int:
        return next(self._seq)

    def next_session_id(self) -> int:
        return next(self._session_ids)

    def _mapped(self, path: str) -> Path:
        for prefix, target in self.path_map:
            if path.startswith(prefix):
                return target / path[len(prefix):].lstrip("/")
        return Path(path)

    def media_path(self, path: str) -> Path | None:
        """The file a prompt path names, or None when it does not exist."""
        candidate = self._mapped(path)
        if not candidate.is_absolute() and self.prompt_root is not None:
            candidate = self.prompt_root / candidate
        return candidate if candidate.is_file() else None

    def record_path(self, path: str) -> Path:
        candidate = self._mapped(path)
        if not candidate.is_absolute() and self.recordings_dir is not None:
            candidate = self.recordings_dir / candidate
        return candidate


def run_call(host: str, port: int, *, timeout: float = 60.0, mode: str = "async full", speed: float = 1.0,
             prompt_root: str | Path | None = None, path_map: Mapping[str, str | Path] | None = None,
             recordings_dir: str | Path | None = None, **call_options: object) -> SimCall:
    """Place one call into ``host:port`` and wait (``timeout`` real seconds) until it is over."""
    simulator = FreeSwitchSimulator(speed, prompt_root, path_map=path_map, recordings_dir=recordings_dir)
    call = simulator.place_call(f"{host}:{port} {mode}", **call_options)  # type: ignore[arg-type]
    try:
        call.wait(timeout)
    finally:
        call.kill()
    return call
