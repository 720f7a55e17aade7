"""The behaviours of shared/FREESWITCH-SAFETY.md, against scripted controllers over real TCP:
host-list failover, nobody listening, ``socket_resume``, the CS_RESET trap, the start-up
watchdog, the 25 s first-command limit, stranded calls and the deliberate hand-back."""

from __future__ import annotations

import socket

import gevent
from sim_controller import Conn, ScriptedController, frame_key, patient
from trace_files import AUDIO

from esl_controller.simulator import (
    CallerScript,
    DialplanSpec,
    FreeSwitchSimulator,
    Hangup,
    SimCall,
    Wait,
    WaitForApp,
)

SPEED = 50.0
LONG = str(AUDIO / "prompt_long.wav")
TENANT = {"domain_uuid": "11111111-1111-1111-1111-111111111111", "domain_name": "tenant-a.example"}


def dead_port() -> int:
    """A loopback port nobody listens on (connects are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def place(dialplan: DialplanSpec, caller: CallerScript | None = None, **options: object) -> SimCall:
    sim = FreeSwitchSimulator(SPEED)
    return sim.place_call(dialplan=dialplan, caller=caller or patient(), **TENANT, **options)  # type: ignore[arg-type]


def finish(call: SimCall, *controllers: ScriptedController) -> None:
    try:
        call.wait(20)
        for controller in controllers:
            controller.check()
    finally:
        call.kill()
        for controller in controllers:
            controller.stop()


def clean_hangup(conn: Conn) -> None:
    conn.start()
    conn.execute("answer")
    conn.send(b"sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
    conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))
    conn.command("exit")


def test_sim_socket_host_list_fails_over_only_while_connect_fails() -> None:
    controller = ScriptedController(clean_hangup)
    down = dead_port()
    call = place(DialplanSpec.socket_only(f"127.0.0.1:{down}|127.0.0.1:{controller.port} async full"))
    finish(call, controller)
    attempts = [(a.port, a.result) for a in call.state.connect_attempts]
    assert attempts == [(down, "refused"), (controller.port, "connected")]
    assert call.outcome is not None and call.outcome.kind == "controller_hangup"
    assert call.commands()[:3] == ["connect", "myevents", "linger 5"]


def test_sim_socket_never_uses_the_second_host_once_the_first_accepted() -> None:
    first = ScriptedController(lambda conn: None)            # accepts, then closes without a word
    second = ScriptedController(clean_hangup)
    call = place(DialplanSpec.shipped([first.target, second.target]), patient([WaitForApp("bridge"), Hangup()]))
    finish(call, first, second)
    assert len(first.conns) == 1 and second.conns == []
    assert call.outcome is not None and call.outcome.kind == "fallback"
    assert "never sent connect" in call.outcome.reason and call.outcome.target == "ivr_fallback"


def test_sim_nobody_listening_goes_to_the_fallback() -> None:
    caller = patient([WaitForApp("bridge"), Wait(2), Hangup()])
    call = place(DialplanSpec.shipped([f"127.0.0.1:{dead_port()}", f"127.0.0.1:{dead_port()}"]), caller)
    finish(call)
    assert [a.result for a in call.state.connect_attempts] == ["refused", "refused"]
    assert call.outcome is not None
    assert (call.outcome.kind, call.outcome.target) == ("fallback", "ivr_fallback")
    assert call.state.fallback_reason == "no controller accepted the connection"
    assert call.state.bridged_to == "loopback/operator/default" and call.state.answered
    assert "socket_resume" not in call.state.variables                 # the fallback unset it


def _crash_mid_prompt(conn: Conn) -> None:
    conn.start()
    conn.execute("answer")
    conn.execute("playback", LONG, wait=False)
    conn.wait_for(lambda: any(e.get("Application") == "playback" for e in conn.events("CHANNEL_EXECUTE")))
    conn.close()                                                          # the controller dies


def test_sim_socket_resume_cuts_the_prompt_when_the_controller_dies() -> None:
    controller = ScriptedController(_crash_mid_prompt)
    spec = DialplanSpec((("set", "socket_resume=true"), ("socket", f"{controller.target} async full"),
                         ("transfer", "ivr_fallback XML default")))
    call = place(spec, patient([WaitForApp("park", 1), Wait(1), Hangup()]))
    finish(call, controller)
    assert call.state.heard[0].stop == "interrupted" and call.state.heard[0].played_ms < 11405
    assert call.outcome is not None and call.outcome.kind == "fallback"
    assert call.outcome.reason == "controller closed the connection (socket_resume)"
    assert call.outcome.target == "ivr_fallback"


def test_sim_without_socket_resume_the_prompt_plays_out_first() -> None:
    controller = ScriptedController(_crash_mid_prompt)
    spec = DialplanSpec((("socket", f"{controller.target} async full"), ("transfer", "ivr_fallback XML default")))
    call = place(spec, patient([WaitForApp("park", 1), Wait(1), Hangup()]))
    finish(call, controller)
    assert call.state.heard[0].stop == "done" and call.state.heard[0].played_ms == 11405
    assert call.outcome is not None and (call.outcome.kind, call.outcome.target) == ("fallback", "ivr_fallback")


def _transfer_then_die(safe: bool) -> ScriptedController:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        if safe:
            conn.execute("set", "socket_resume=false")
        conn.execute("transfer", "6000 XML default")
        conn.wait_for(lambda: any(e["Caller-Destination-Number"] == "6000" for e in conn.events("CHANNEL_PARK")))
        conn.close()

    return ScriptedController(script)


def test_sim_cs_reset_trap_after_a_transfer_that_kept_the_socket() -> None:
    controller = _transfer_then_die(safe=False)
    spec = DialplanSpec((("set", "socket_resume=true"), ("socket", f"{controller.target} async full")))
    call = place(spec, patient(dead_air_patience=5))
    finish(call, controller)
    assert call.outcome is not None and call.outcome.kind == "cs_reset"
    assert call.state.hangup_by == "caller"                              # dead air until the caller gave up


def test_sim_socket_resume_false_before_transfer_avoids_the_trap() -> None:
    controller = _transfer_then_die(safe=True)
    spec = DialplanSpec((("set", "socket_resume=true"), ("socket", f"{controller.target} async full")))
    call = place(spec)
    finish(call, controller)
    assert call.outcome is not None and (call.outcome.kind, call.outcome.target) == ("transferred", "6000")
    assert call.state.hangup_by == "dialplan"       # the park in 6000 ended with control, then the dialplan


def test_sim_sync_mode_with_socket_resume_is_the_trap() -> None:
    def script(conn: Conn) -> None:
        data = conn.command("connect")
        assert data.headers["Socket-Mode"] == "static"
        conn.command("exit")

    controller = ScriptedController(script)
    spec = DialplanSpec((("set", "socket_resume=true"), ("socket", f"{controller.target} full"),
                         ("transfer", "ivr_fallback XML default")))
    call = place(spec, patient(start="now", dead_air_patience=5))
    finish(call, controller)
    assert call.outcome is not None and call.outcome.kind == "cs_reset"


def test_sim_watchdog_moves_a_silent_controller_to_the_fallback() -> None:
    seen: list[Conn] = []

    def script(conn: Conn) -> None:
        seen.append(conn)
        conn.start(linger=None)
        conn.closed.wait(timeout=15)

    controller = ScriptedController(script)
    call = place(DialplanSpec.shipped([controller.target]),
                 patient([WaitForApp("bridge"), Wait(1), Hangup()], start="now"))
    finish(call, controller)
    assert call.outcome is not None
    assert (call.outcome.kind, call.outcome.target) == ("fallback", "ivr_fallback")
    assert call.outcome.reason == "watchdog (sched_transfer)"
    # The socket stayed connected: the controller saw the call leave (like trace h1).
    names = [(e.name, e.get("Application")) for e in seen[0].events()]
    assert names[:3] == [("CHANNEL_PARK", None), ("CHANNEL_UNPARK", None), ("CHANNEL_EXECUTE_COMPLETE", "socket")]
    assert seen[0].events()[3]["Caller-Destination-Number"] == "ivr_fallback"


def test_sim_sched_cancel_disarms_the_watchdog() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("sched_cancel")
        conn.execute("answer")
        conn.execute("playback", LONG)                  # 2 × 11.4 s: well past the 15 s watchdog
        conn.execute("playback", LONG)
        conn.send(b"sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))

    controller = ScriptedController(script)
    call = place(DialplanSpec.shipped([controller.target]))
    finish(call, controller)
    assert call.outcome is not None and call.outcome.kind == "controller_hangup"
    assert call.state.transferred_to is None and call.state.fallback_extension is None


def _silent(conn: Conn) -> None:
    conn.wait_for(lambda: conn.closed.is_set(), timeout=15)


def test_sim_first_command_limit_with_socket_resume_continues_the_dialplan() -> None:
    controller = ScriptedController(_silent)
    spec = DialplanSpec((("set", "socket_resume=true"), ("socket", f"{controller.target} async full"),
                         ("transfer", "ivr_fallback XML default")))
    call = place(spec, patient([WaitForApp("park"), Hangup()], start="now"))
    finish(call, controller)
    assert call.outcome is not None and call.outcome.kind == "fallback"
    assert call.outcome.reason == "controller never sent connect (no command within 25 s)"
    assert [frame_key(f) for f in controller.conns[0].frames] == [("text/disconnect-notice", "disconnect")]


def test_sim_first_command_limit_without_resume_strands_the_call() -> None:
    controller = ScriptedController(_silent)
    call = place(DialplanSpec.socket_only(f"{controller.target} async full"),
                 patient(start="now", dead_air_patience=10))
    finish(call, controller)
    assert call.outcome is not None and call.outcome.kind == "stranded"
    assert call.state.socket_end_reason == "no command within 25 s"


def test_sim_after_connect_nothing_times_out_a_silent_controller() -> None:
    def script(conn: Conn) -> None:
        conn.command("connect")
        gevent.sleep(40 / SPEED)                        # 40 simulated seconds of silence
        assert conn.command("myevents").reply_text == "+OK Events Enabled"
        clean_hangup_after_connect(conn)

    def clean_hangup_after_connect(conn: Conn) -> None:
        conn.send(b"sendmsg\ncall-command: hangup\n\n")
        conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))

    controller = ScriptedController(script)
    call = place(DialplanSpec.socket_only(f"{controller.target} async full"))
    finish(call, controller)
    assert call.outcome is not None and call.outcome.kind == "controller_hangup"


def test_sim_accept_then_close_without_connect_strands_the_call() -> None:
    controller = ScriptedController(lambda conn: None)
    call = place(DialplanSpec.socket_only(f"{controller.target} async full"), patient(dead_air_patience=5))
    finish(call, controller)
    assert call.outcome is not None and call.outcome.kind == "stranded"


def test_sim_resume_and_exit_hand_the_call_back() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        assert conn.command("resume").reply_text == "+OK"
        assert conn.command("exit").reply_text == "+OK bye"

    controller = ScriptedController(script)
    spec = DialplanSpec((("socket", f"{controller.target} async full"), ("transfer", "ivr_fallback XML default")),
                        {"ivr_fallback": (("answer", ""), ("hangup", "NORMAL_CLEARING"))})
    call = place(spec)
    finish(call, controller)
    assert call.outcome is not None
    assert (call.outcome.kind, call.outcome.target, call.outcome.reason) == (
        "fallback", "ivr_fallback", "exit (socket_resume)")
    assert call.state.variables["socket_resume"] == "true"               # `resume` sets the variable
    assert call.state.hangup_by == "dialplan"
