"""The controller as ``make serve`` wires it, in the test's process: an SQLite database with the demo
tenant, flows published and routed, the tenant's documents ingested, the local providers.

`TenantController` is what the real-FreeSWITCH speech tests call into (and what an operator runs):
`esl_controller.database_wiring.build_database_controller` behind a real `EslServer`, with every
per-machine folder (``IVR_VAR_DIR``, ``IVR_RAG_DIR``, ``IVR_RUN_DIR``, ``IVR_TTS_CACHE_DIR``)
inside the test's folder. Call records are read back from the database.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from esl_controller.controller import ControllerSettings
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings

REPO = Path(__file__).resolve().parents[2]
KNOWLEDGE = REPO / "examples" / "knowledge"


@contextmanager
def tenant_environment(folder: Path) -> Iterator[str]:
    """The environment variables `ivr` reads, pointed into ``folder``; yields the database URL."""
    url = f"sqlite:///{folder / 'ivr.db'}"
    from cryptography.fernet import Fernet

    values = {"IVR_DATABASE_URL": url, "IVR_VAR_DIR": str(folder / "var"), "IVR_RAG_DIR": str(folder / "rag"),
              "IVR_RUN_DIR": str(folder / "run"), "IVR_TTS_CACHE_DIR": str(folder / "tts-cache"),
              "HF_DEACTIVATE_ASYNC_LOAD": "1",
              "IVR_SECRET_KEYS": os.environ.get("IVR_SECRET_KEYS") or Fernet.generate_key().decode()}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ivr(*args: str) -> str:
    """Run an ``ivr`` command in this process (click's runner); fails the test on a non-zero exit."""
    from scripts.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
    return result.output


class TenantController:
    """The database-backed controller (see the module docstring); ``target`` is its host:port."""

    def __init__(self, folder: Path, url: str, *, settings: ControllerSettings | None = None,
                 max_calls: int = 50) -> None:
        from esl_controller.database_wiring import build_database_controller
        from schema.demo import seed_demo

        seed_demo(url, REPO / "examples" / "flows")
        self.url = url
        settings = settings or ControllerSettings(session=SessionSettings(command_timeout=5, linger_seconds=5))
        self.controller, self.routing, self.background = build_database_controller(
            url, settings=settings, var_dir=folder / "var")
        self.server = EslServer("127.0.0.1", 0, self.controller, max_calls=max_calls)
        self.server.start()

    @property
    def target(self) -> str:
        host, port = self.server.address
        return f"{host}:{port}"

    def records(self) -> dict[str, Any]:
        from schema.database import make_engine, make_session_factory
        from schema.demo import DEMO_DOMAIN_UUID
        from schema.store import TenantStore

        store = TenantStore.open(make_session_factory(make_engine(self.url)), DEMO_DOMAIN_UUID)
        return {r.call_uuid: r for r in store.call_records(limit=1000)}

    def record(self, call_uuid: str, timeout: float = 30.0) -> Any:
        import gevent

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records().get(call_uuid)
            if found is not None:
                return found
            gevent.sleep(0.2)
        raise AssertionError(f"no call record for {call_uuid} after {timeout}s")

    def stop(self) -> None:
        self.server.stop(2)
        for part in self.background:
            part.stop()


def caller_voice() -> Any:
    """The test caller's voice: piper without random variation (the same question is the same audio)."""
    from providers import registry

    return registry.build("tts", "piper", {"noise_scale": 0.0, "noise_w_scale": 0.0})


def say_wav(voice: Any, text: str, folder: Path, *, pause_after: dict[str, float] | None = None) -> Path:
    """``text`` spoken at 8 kHz; ``pause_after`` inserts silence after a word ("…Saturday|0.5")."""
    from providers.audio import AudioClip

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] + ".wav")
    if path.is_file():
        return path
    pieces = [text]
    if pause_after:
        pieces = re.split("(" + "|".join(re.escape(w) for w in pause_after) + ")", text)
    pcm = b""
    for piece in pieces:
        if not piece.strip():
            continue
        pcm += voice.synthesize(piece.strip()).resample(8000).pcm
        if pause_after and piece in pause_after:
            pcm += b"\x00\x00" * int(8000 * pause_after[piece])
    AudioClip(pcm, 8000).write_wav(path)
    return path
