"""Controllers under test: the real server in this process, or `ivr serve` in a process of its own.

- `InProcessController` runs `EslServer` + `CallController` over a folder of flows in the test's
  own process (the call records land in ``records``; a ``context_hook`` may put services on each
  call's `FlowContext`).
- `ServeProcess` runs ``ivr serve`` as a child process, so a test can kill it, freeze it
  (SIGSTOP, a hung controller), wake it (SIGCONT) or drain it (SIGTERM), as an operator's
  machine would.
- `product_dialplan` is what ``ivr dialplan`` prints, pointed at these controllers, with the
  fallback bridging to the stand-in person at 1000 of the test FreeSWITCH's configuration.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from esl_controller.call_record import CallRecord
from esl_controller.controller import CallController, ControllerSettings
from esl_controller.dialplan import DialplanSpec, render_dialplan
from esl_controller.routing import DirectoryRouting
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings

REPO = Path(__file__).resolve().parents[2]
TENANT_UUID = "11111111-1111-1111-1111-111111111111"
TENANT_NAME = "tenant-a.example"
OPERATOR = "1000"
FALLBACK_TONE = "tone_stream://%(100,0,600)"


def product_dialplan(hosts: list[str], *, number: str = "5000", context: str = "default",
                     layout: str = "plain", watchdog_seconds: int = 15, domain_name: str = TENANT_NAME,
                     domain_uuid: str = TENANT_UUID) -> str:
    """The output of ``ivr dialplan`` for these controllers (fallback: the person at 1000)."""
    spec = DialplanSpec(domain_uuid=domain_uuid, domain_name=domain_name, number=number, hosts=tuple(hosts),
                        fallback_bridge=f"loopback/{OPERATOR}/default", fallback_prompt=FALLBACK_TONE,
                        context=context, watchdog_seconds=watchdog_seconds, layout=layout)
    return render_dialplan(spec)


class InProcessController:
    """The real ESL server and per-call controller, in this process, over a folder of flows."""

    def __init__(self, tmp_path: Path, flows_dir: Path, *, default_flow: str, max_calls: int = 50,
                 context_hook: Callable[[Any, Any], None] | None = None, watchdog: Any = None,
                 **settings: Any) -> None:
        self.records: list[CallRecord] = []
        routing = DirectoryRouting(flows_dir, default_flow=default_flow, recordings_dir=tmp_path / "recordings")
        session = settings.pop("session", None) or SessionSettings(command_timeout=5, linger_seconds=5)
        self.controller = CallController(
            routing, record_sink=self.records.append, context_hook=context_hook, watchdog=watchdog,
            settings=ControllerSettings(session=session, recordings_dir=tmp_path / "recordings", **settings))
        self.server = EslServer("127.0.0.1", 0, self.controller, max_calls=max_calls)
        self.server.start()

    @property
    def target(self) -> str:
        host, port = self.server.address
        return f"{host}:{port}"

    def wait_records(self, count: int = 1, timeout: float = 30.0) -> list[CallRecord]:
        import gevent

        deadline = time.monotonic() + timeout
        while len(self.records) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.records)} call records after {timeout}s, expected {count}")
            gevent.sleep(0.05)
        return self.records

    def stop(self) -> None:
        self.server.stop(2)


class ServeProcess:
    """``ivr serve`` in a child process (same Python, this repository first on the path)."""

    def __init__(self, tmp_path: Path, *, port: int, args: list[str], env: dict[str, str] | None = None,
                 name: str = "serve") -> None:
        self.port = port
        self.log_path = tmp_path / f"{name}-{port}.log"
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), child_env.get("PYTHONPATH", "")]))
        child_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "--log-format", "json", "serve", "--host", "127.0.0.1",
             "--port", str(port), *args], cwd=tmp_path, env=child_env, stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_listening()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 60.0) -> None:
        # From its log, not by connecting: a connection would be a call to the controller.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ivr serve exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if "esl.server_listening" in self.log():
                return
            time.sleep(0.1)
        raise TimeoutError(f"ivr serve did not listen on {self.port}:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        import json

        events = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def wake(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()
