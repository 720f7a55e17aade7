"""The controller keeps every duty of FREESWITCH-SAFETY.md, shown with the simulator's shipped dialplan."""

from __future__ import annotations

import socket
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gevent
from e2e_controller import ROOT, TENANT_NAME, TENANT_UUID, Controller

from esl_controller.dialplan import DialplanSpec as ShippedDialplan
from esl_controller.dialplan import render_dialplan
from esl_controller.simulator import CallerScript, DialplanSpec, Hangup, Press, Wait, WaitForApp
from esl_controller.watchdog import ProgressWatchdog


def shipped(controller: Controller, **kw) -> DialplanSpec:
    host, port = controller.server.address
    return DialplanSpec.shipped(hosts=(f"{host}:{port}",), **kw)


def test_the_simulators_shipped_dialplan_is_what_ivr_dialplan_prints():
    xml = render_dialplan(ShippedDialplan(TENANT_UUID, TENANT_NAME, "5000", hosts=("127.0.0.1:8084",),
                                          fallback_bridge="loopback/operator/default"))
    extensions = ET.fromstring(xml).findall("extension")
    printed = [(a.get("application"), a.get("data") or "") for a in extensions[0].iter("action")]
    sim = DialplanSpec.shipped(hosts=("127.0.0.1:8084",))
    tenant_free = [a for a in printed if not a[1].startswith(("domain_uuid=", "domain_name="))]
    assert tenant_free == list(sim.actions)
    fallback = [(a.get("application"), a.get("data") or "") for a in extensions[1].iter("action")]
    assert [a for a, _ in fallback] == [a for a, _ in sim.extensions["ivr_fallback"]]


def test_sync_mode_is_refused_and_the_caller_reaches_the_fallback(tmp_path):
    c = Controller(tmp_path)
    try:
        host, port = c.server.address
        call, outcome = c.call(CallerScript([]), dialplan=shipped(c, mode="full"))
        assert c.records[-1].outcome == "refused_sync_mode"
        assert outcome.kind != "cs_reset"
        assert call.state.transferred_to and call.state.transferred_to.startswith("ivr_fallback")
        assert "sendmsg execute answer" not in call.commands()
    finally:
        c.stop()


def test_watchdog_is_cancelled_first_so_a_long_healthy_call_stays(tmp_path):
    c = Controller(tmp_path)
    try:
        # 15 s simulated watchdog; the caller stays silent long enough for the menu to retry past it.
        call, outcome = c.call(CallerScript([Wait(0.5), WaitForApp("play_and_get_digits", nth=3), Press("1")]),
                               dialplan=shipped(c))
        cmds = call.commands()
        assert cmds[1] == "sendmsg execute sched_cancel"
        assert call.state.transferred_to.startswith("1001"), outcome
        assert call.state.fallback_reason == ""
    finally:
        c.stop()


def test_calls_end_with_call_command_hangup(tmp_path):
    flow = tmp_path / "bye.yaml"
    flow.write_text("flow: bye\nstart: bye\nnodes:\n  bye: {type: hangup, say: \"Goodbye.\", cause: USER_BUSY}\n")
    c = Controller(tmp_path, flows_dir=tmp_path, default_flow="bye")
    try:
        call, outcome = c.call(CallerScript([]), dialplan=shipped(c))
        assert "sendmsg hangup USER_BUSY" in call.commands() or any(
            cmd.startswith("sendmsg hangup") for cmd in call.commands())
        assert not any(cmd.startswith("sendmsg execute hangup") for cmd in call.commands())
        assert outcome.kind == "controller_hangup" and outcome.cause == "USER_BUSY"
    finally:
        c.stop()


def test_a_controller_crash_after_a_transfer_does_not_strand_the_caller(tmp_path):
    c = Controller(tmp_path)
    try:
        crashed = threading.Event()

        def crash_after_transfer(cmd):
            if "execute transfer" in cmd.summary and not crashed.is_set():
                crashed.set()
                # The controller process dies right after the transfer: its sockets close with no exit.
                gevent.spawn_later(0.05, lambda: [s.close("crash") for s in list(c.controller.sessions)])

        call = c.sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                                dialplan=shipped(c), on_command=crash_after_transfer,
                                caller=CallerScript([WaitForApp("play_and_get_digits"), Press("1"), Wait(2),
                                                     Hangup()]))
        outcome = call.wait(timeout=30)
        assert crashed.is_set()
        assert outcome.kind != "cs_reset", outcome
        assert call.state.phase != "cs_reset" and call.state.dead_air_since is None
        assert call.state.transferred_to.startswith("1001")
    finally:
        c.stop()


def test_a_stalled_flow_is_moved_to_the_fallback_by_the_watchdog(tmp_path):
    class Hang(BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(20)

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    flow = tmp_path / "stall.yaml"
    flow.write_text(
        "flow: stall\nstart: lookup\nnodes:\n"
        f"  lookup: {{type: webhook, url: \"http://127.0.0.1:{http.server_address[1]}/x\", timeout: 30s,"
        " retries: 0, next: {ok: bye, error: bye}}\n"
        "  bye: {type: hangup}\n")

    def allow_loopback(ctx, route):
        ctx.allowed_url_hosts = frozenset({"127.0.0.1"})

    c = Controller(tmp_path, flows_dir=tmp_path, default_flow="stall", context_hook=allow_loopback,
                   watchdog=ProgressWatchdog(stall_seconds=0.5, grace_seconds=0.5, interval=0.1))
    try:
        call, outcome = c.call(CallerScript([]), dialplan=shipped(c))
        assert c.records[-1].outcome == "stalled"
        assert call.state.transferred_to.startswith("ivr_fallback"), outcome
    finally:
        c.stop()
        http.shutdown()


def test_a_dead_controller_mid_prompt_hands_the_caller_to_the_fallback(tmp_path):
    c = Controller(tmp_path)
    try:
        def kill(cmd):
            if "execute speak" in cmd.summary:
                gevent.spawn_later(0.02, lambda: [s.close("crash") for s in list(c.controller.sessions)])

        call = c.sim.place_call(socket_data=c.socket_data, domain_uuid=TENANT_UUID, domain_name=TENANT_NAME,
                                dialplan=shipped(c), on_command=kill, caller=CallerScript([Wait(3), Hangup()]))
        outcome = call.wait(timeout=30)
        assert call.state.fallback_extension == "ivr_fallback" or outcome.kind == "fallback", outcome
    finally:
        c.stop()


def test_nobody_listening_goes_straight_to_the_fallback(tmp_path):
    c = Controller(tmp_path)
    try:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
        s.close()  # nothing listens there: the connect is refused
        host, port = c.server.address
        spec = DialplanSpec.shipped(hosts=(f"127.0.0.1:{dead_port}", f"{host}:{port}"))
        call = c.sim.place_call(domain_uuid=TENANT_UUID, domain_name=TENANT_NAME, dialplan=spec,
                                caller=CallerScript([WaitForApp("play_and_get_digits"), Press("2")]))
        call.wait(timeout=30)
        assert call.state.transferred_to.startswith("1002")
        attempts = call.state.connect_attempts
        assert len(attempts) == 2
    finally:
        c.stop()


assert ROOT.exists()
