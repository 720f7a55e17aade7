"""A running controller process: server + controller + routing + watchdog, started and stopped together.

`build_service` wires the parts from the command line's options: a flows folder (one tenant,
no database) or the database (tenants, published flows, providers, call records, live reload).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from esl_controller.controller import CallController, ControllerSettings
from esl_controller.routing import DirectoryRouting, Routing
from esl_controller.server import EslServer
from esl_controller.watchdog import ProgressWatchdog

log = structlog.get_logger(__name__)


@dataclass
class ControllerService:
    server: EslServer
    controller: CallController
    routing: Routing
    watchdog: ProgressWatchdog
    background: list[Any] = field(default_factory=list)   # things with .stop(): reload listener, spool flusher

    def start(self) -> None:
        self.server.start()

    def stop(self, drain_seconds: float = 30.0) -> None:
        def hand_back_the_rest() -> None:
            for session in list(self.controller.sessions):
                log.warning("service.drain_deadline_hand_back", call_uuid=session.uuid)
                session.hand_back()

        self.server.stop(drain_seconds, on_deadline=hand_back_the_rest)
        self.watchdog.stop()
        self.controller.deadman.stop()
        for part in self.background:
            part.stop()


def build_service(*, host: str = "127.0.0.1", port: int = 8084, flows_dir: Path | None = None,
                  default_flow: str = "demo-main", database_url: str | None = None, max_calls: int = 2000,
                  settings: ControllerSettings | None = None, stall_seconds: float = 60.0,
                  transfer_context: str | None = None) -> ControllerService:
    watchdog = ProgressWatchdog(stall_seconds=stall_seconds)
    background: list[Any] = []
    if flows_dir is not None:
        routing: Routing = DirectoryRouting(Path(flows_dir), default_flow=default_flow,
                                            transfer_context=transfer_context)
        controller = CallController(routing, settings=settings, watchdog=watchdog)
    else:
        from esl_controller.database_wiring import build_database_controller

        controller, routing, background = build_database_controller(database_url, settings=settings,
                                                                     watchdog=watchdog)
    server = EslServer(host, port, controller, max_calls=max_calls)
    return ControllerService(server, controller, routing, watchdog, background)
