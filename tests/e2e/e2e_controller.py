"""An in-process controller (real server, real flows from ``examples/flows``) and the simulator."""

from __future__ import annotations

from pathlib import Path

from esl_controller.controller import CallController, ControllerSettings
from esl_controller.routing import DirectoryRouting
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings
from esl_controller.simulator import FreeSwitchSimulator

ROOT = Path(__file__).resolve().parents[2]
TENANT_UUID = "11111111-1111-1111-1111-111111111111"
TENANT_NAME = "tenant-a.example"


class Controller:
    def __init__(self, tmp_path: Path, flows_dir: Path = ROOT / "examples" / "flows", *,
                 default_flow: str = "demo-main", watchdog=None, context_hook=None, **settings) -> None:
        self.records = []
        routing = DirectoryRouting(flows_dir, default_flow=default_flow, recordings_dir=tmp_path / "recordings")
        self.controller = CallController(
            routing, record_sink=self.records.append, watchdog=watchdog, context_hook=context_hook,
            settings=ControllerSettings(session=SessionSettings(command_timeout=3, linger_seconds=5),
                                        recordings_dir=tmp_path / "recordings", **settings))
        self.server = EslServer("127.0.0.1", 0, self.controller, max_calls=50)
        self.server.start()
        self.sim = FreeSwitchSimulator(speed=40)

    @property
    def socket_data(self) -> str:
        host, port = self.server.address
        return f"{host}:{port} async full"

    def call(self, caller, **kw):
        kw.setdefault("domain_uuid", TENANT_UUID)
        kw.setdefault("domain_name", TENANT_NAME)
        call = self.sim.place_call(socket_data=self.socket_data, caller=caller, **kw)
        outcome = call.wait(timeout=30)
        assert self.server.calls.join(timeout=10), "the controller's call greenlet did not end"
        return call, outcome

    def stop(self) -> None:
        self.server.stop(deadline=2)


