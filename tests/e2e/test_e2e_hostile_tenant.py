"""One tenant can never hurt another: a hostile or broken tenant is refused alone, the others'
calls go on, on a real controller with a real database and the FreeSWITCH simulator.

Findings: a flow whose load held the hub 25 s made another tenant's call wait 27.5 s for
``connect``; with ``IVR_SECRET_KEYS`` wrong, ``ivr serve`` died with a ``SecretUndecryptable``
traceback for every tenant.
"""

from __future__ import annotations

import time
from pathlib import Path

import gevent
import pytest
import structlog
from cryptography.fernet import Fernet
from e2e_controller import ROOT, TENANT_NAME, TENANT_UUID

from esl_controller import database_routing
from esl_controller.controller import ControllerSettings
from esl_controller.database_wiring import build_database_controller
from esl_controller.flow_loading import load_flow_off_hub
from esl_controller.server import EslServer
from esl_controller.session import SessionSettings
from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Press, WaitForApp
from ivr_flows.limits import FlowLimits
from schema.database import make_engine, make_session_factory
from schema.demo import seed_demo
from schema.store import TenantStore
from schema.tenants import add_tenant

EVIL_UUID = "66666666-6666-4666-8666-666666666666"
EVIL_NAME = "evil.example"


def _caller() -> CallerScript:
    return CallerScript([WaitForApp("play_and_get_digits", timeout=3600), Press("1")], ring_timeout=None,
                        max_call_seconds=3600)


def _heavy_flow(nodes: int = 900) -> str:
    """Valid, within every limit, and slow to validate: many nodes, each with templates."""
    lines = ["flow: heavy", "start: n0", "nodes:"]
    for i in range(nodes):
        lines.append(f"  n{i}: {{type: set, vars: {{a: \"{{{{ vars.x | default('') ~ '{i}' }}}}\", "
                     f"b: \"{{{{ (vars.y | default(0)) * 2 + {i} }}}}\"}}, next: n{i + 1}}}")
    lines.append(f"  n{nodes}: {{type: hangup}}")
    return "\n".join(lines) + "\n"


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    url = f"sqlite:///{tmp_path / 'ivr.db'}"
    for name, value in {"IVR_DATABASE_URL": url, "IVR_RUN_DIR": str(tmp_path / "run"),
                        "IVR_VAR_DIR": str(tmp_path / "var"), "IVR_WARM_PROVIDERS": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    seed_demo(url, ROOT / "examples" / "flows")
    sessions = make_session_factory(make_engine(url))
    add_tenant(sessions, EVIL_NAME, domain_uuid=EVIL_UUID)
    return {"url": url, "sessions": sessions, "tmp": tmp_path}


class _Running:
    def __init__(self, env: dict, **kw: object) -> None:
        settings = ControllerSettings(session=SessionSettings(command_timeout=5, linger_seconds=5))
        self.controller, self.routing, self.background = build_database_controller(
            env["url"], settings=settings, var_dir=env["tmp"] / "var", **kw)  # type: ignore[arg-type]
        self.server = EslServer("127.0.0.1", 0, self.controller, max_calls=20)
        self.server.start()
        host, port = self.server.address
        self.socket_data = f"{host}:{port} async full"

    def stop(self) -> None:
        self.server.stop(deadline=2)
        for part in self.background:
            part.stop()


def test_a_heavy_flow_loading_never_stops_the_hub_and_the_other_tenants_call_goes_on(env: dict) -> None:
    running = _Running(env)
    store = TenantStore.open(env["sessions"], EVIL_NAME)
    store.add_version("heavy", _heavy_flow(), author="evil")       # published after the start: a reload
    store.set_route("6000", "heavy")
    try:
        ticks: list[float] = []
        reloading = gevent.spawn(running.routing.reload, EVIL_NAME)

        def tick() -> None:
            while not reloading.ready():
                ticks.append(time.monotonic())
                gevent.sleep(0.001)

        ticker = gevent.spawn(tick)
        sim = FreeSwitchSimulator(speed=20)
        call = sim.place_call(socket_data=running.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                              caller=_caller())
        reloading.join(timeout=120)
        ticker.join(timeout=5)
        call.wait(timeout=60)
        assert reloading.successful() and reloading.value == "ok"
        # While the tenant's 900-node flow was validated and rebuilt, the hub kept running other
        # greenlets (in-process loading gave this ticker no turn at all until the load ended).
        assert len(ticks) > 20, len(ticks)
        assert call.state.transferred_to.startswith("1001"), call.commands()
        assert "heavy" in {f.name for f in running.routing._table.flows.values()}
    finally:
        running.stop()


def test_a_flow_over_the_load_time_limit_refuses_only_its_tenant(env: dict) -> None:
    store = TenantStore.open(env["sessions"], EVIL_NAME)
    store.add_version("heavy", _heavy_flow(), author="evil")
    store.set_route("6000", "heavy")
    def strict(text: str, source: str, **options: object) -> object:
        limits = FlowLimits(load_seconds=0.05) if "/heavy@" in source else None
        return load_flow_off_hub(text, source, limits=limits, **options)

    from esl_controller.database_routing import DatabaseRouting

    routing = DatabaseRouting(make_engine(env["url"]), prompt_root=env["tmp"] / "prompts", flow_loader=strict)
    assert EVIL_UUID in routing.refused and "took longer than 0.05 s" in routing.refused[EVIL_UUID]
    assert any("evil.example is refused" in p for p in routing.last_problems)
    assert TENANT_UUID in routing._table.snapshots            # the demo tenant is served


def test_a_hostile_set_node_at_call_time_sends_only_its_caller_to_the_fallback(env: dict) -> None:
    hostile = ("flow: loops\nstart: s\nnodes:\n"
               "  s: {type: set, vars: {x: \"{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}"
               "{% endfor %}\"}, next: h}\n"
               "  h: {type: hangup}\n")
    store = TenantStore.open(env["sessions"], EVIL_NAME)
    store.add_version("loops", hostile, author="evil")
    running = _Running(env)
    try:
        sim = FreeSwitchSimulator(speed=20)
        store.set_route("6000", "loops")
        running.routing.reload(EVIL_NAME)
        evil = sim.place_call(socket_data=running.socket_data, domain_uuid=EVIL_UUID, domain_name=EVIL_NAME,
                              destination="6000", caller=CallerScript([], ring_timeout=None, max_call_seconds=60))
        good = sim.place_call(socket_data=running.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                              caller=_caller())
        evil.wait(timeout=60)
        good.wait(timeout=60)
        assert evil.state.transferred_to.startswith("ivr_fallback"), evil.commands()
        assert good.state.transferred_to.startswith("1001")
    finally:
        running.stop()


def test_an_undecryptable_secret_refuses_only_its_tenant(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_SECRET_KEYS", Fernet.generate_key().decode())
    store = TenantStore.open(env["sessions"], EVIL_NAME)
    store.set_provider("llm", "openai", settings={"model": "gpt-4o-mini"}, secrets={"api_key": "sk-test-123456789"})
    store.add_version("demo-main", (ROOT / "examples" / "flows" / "demo.yaml").read_text(), author="b")
    store.set_route("6000", "demo-main")
    monkeypatch.setenv("IVR_SECRET_KEYS", Fernet.generate_key().decode())      # the key was "lost"
    # A fresh logger proxy: the module's may be cached by an earlier test's configure_logging(),
    # and capture_logs only sees loggers bound after it starts.
    monkeypatch.setattr(database_routing, "log", structlog.get_logger(database_routing.__name__))
    with structlog.testing.capture_logs() as logs:
        running = _Running(env)                              # starts: no SecretUndecryptable traceback
    try:
        assert "cannot be decrypted" in running.routing.refused[EVIL_UUID]
        sim = FreeSwitchSimulator(speed=20)
        evil = sim.place_call(socket_data=running.socket_data, domain_uuid=EVIL_UUID, domain_name=EVIL_NAME,
                              destination="6000", caller=_caller())
        good = sim.place_call(socket_data=running.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                              caller=_caller())
        evil.wait(timeout=60)
        good.wait(timeout=60)
        assert evil.state.transferred_to.startswith("ivr_fallback")
        assert good.state.transferred_to.startswith("1001")
    finally:
        running.stop()
    refused = [e for e in logs if e["event"] == "routing.tenant_refused"]
    assert refused and refused[0]["tenant"] == EVIL_NAME and refused[0]["log_level"] == "error"
    assert "sk-test-123456789" not in repr(logs)


def test_without_any_secret_key_the_tenants_without_secrets_are_served(env: dict,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_SECRET_KEYS", Fernet.generate_key().decode())
    TenantStore.open(env["sessions"], EVIL_NAME).set_provider("llm", "openai", secrets={"api_key": "sk-x"})
    monkeypatch.delenv("IVR_SECRET_KEYS")
    running = _Running(env)
    try:
        assert "IVR_SECRET_KEYS is not set" in running.routing.refused[EVIL_NAME]
        assert TENANT_UUID in running.routing._table.snapshots
    finally:
        running.stop()
