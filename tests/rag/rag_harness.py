"""Shared pieces of the RAG tests: a tenant database, the example knowledge base, caller audio
made with the local TTS, and an in-process controller + FreeSWITCH simulator for `ask_ai` calls.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from esl_controller.controller import CallController, ControllerSettings
from esl_controller.routing import DirectoryRouting
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings
from esl_controller.simulator import FreeSwitchSimulator
from schema.database import make_engine, make_session_factory
from schema.migrate import upgrade
from schema.store import TenantStore
from schema.tenants import add_tenant

os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")

ROOT = Path(__file__).resolve().parents[2]
KNOWLEDGE = ROOT / "examples" / "knowledge"
FLOWS = Path(__file__).parent / "flows"
TENANT_UUID = "22222222-2222-2222-2222-222222222222"
TENANT_NAME = "dental.example"


def make_database(folder: Path, *names: str) -> tuple[Any, dict[str, TenantStore]]:
    """A migrated SQLite database with one tenant per name; returns (engine, name → store)."""
    url = f"sqlite:///{folder / 'ivr.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    stores = {}
    for name in names:
        info = add_tenant(sessions, name)
        stores[name] = TenantStore(sessions, info.id)
    return engine, stores


def caller_voice() -> Any:
    """The simulated caller's voice: piper without its random variation, so a question is the same
    audio in every run (and pocketsphinx hears the same words in every run)."""
    from providers import registry

    return registry.build("tts", "piper", {"noise_scale": 0.0, "noise_w_scale": 0.0})


def caller_wav(tts: Any, text: str, folder: Path) -> Path:
    """`text` said by `tts` (see `caller_voice`), at the telephone rate, as a WAV the simulated caller speaks."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] + ".wav")
    if not path.is_file():
        clip = tts.synthesize(text)
        clip.resample(8000).write_wav(path)
    return path


class SecretaryRig:
    """A real server + controller running `flows/secretary.yaml`, services installed per call."""

    def __init__(self, tmp_path: Path, services: Callable[[], dict[str, Any]], *, speed: float = 3.0,
                 flows_dir: Path = FLOWS, default_flow: str = "secretary") -> None:
        self.records: list[Any] = []
        self.contexts: list[Any] = []
        routing = DirectoryRouting(flows_dir, default_flow=default_flow, recordings_dir=tmp_path / "recordings",
                                   tenant_name=TENANT_NAME)

        def hook(ctx: Any, route: Any) -> None:
            for key, value in services().items():
                ctx.extensions[key] = value
            self.contexts.append(ctx)

        self.controller = CallController(
            routing, record_sink=self.records.append, context_hook=hook,
            settings=ControllerSettings(session=SessionSettings(command_timeout=5, linger_seconds=5),
                                        recordings_dir=tmp_path / "recordings"))
        self.server = EslServer("127.0.0.1", 0, self.controller, max_calls=10)
        self.server.start()
        self.sim = FreeSwitchSimulator(speed=speed)

    def call(self, caller: Any, timeout: float = 120.0) -> tuple[Any, Any, Any]:
        host, port = self.server.address
        call = self.sim.place_call(socket_data=f"{host}:{port} async full", caller=caller,
                                   domain_uuid=TENANT_UUID, domain_name=TENANT_NAME)
        outcome = call.wait(timeout=timeout)
        deadline = time.monotonic() + 20
        while not self.records and time.monotonic() < deadline:
            time.sleep(0.05)
        return call, outcome, self.records[-1] if self.records else None

    def stop(self) -> None:
        self.server.stop(deadline=2)
