"""Each fault knob of the simulator, seen from a scripted controller over TCP."""

from __future__ import annotations

from collections.abc import Callable

from sim_controller import Conn, ScriptedController, frame_key, patient
from trace_files import AUDIO

from esl_controller.protocol import EslParser, encode_reply
from esl_controller.simulator import CallerScript, Faults, FreeSwitchSimulator, SimCall

SPEED = 50.0
SHORT = str(AUDIO / "prompt_short.wav")


def run(script: Callable[[Conn], None], faults: Faults, caller: CallerScript | None = None) -> tuple[SimCall, Conn]:
    controller = ScriptedController(script)
    call = FreeSwitchSimulator(SPEED).place_call(f"{controller.target} async full", faults=faults,
                                                 caller=caller or patient(dead_air_patience=5))
    try:
        call.wait(20)
        controller.check()
    finally:
        call.kill()
        controller.stop()
    return call, controller.conns[0]


def normal_call(conn: Conn) -> None:
    conn.start()
    conn.execute("answer")
    conn.execute("playback", SHORT)
    conn.send(b"sendmsg\ncall-command: hangup\n\n")
    conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))
    conn.command("exit")
    conn.closed.wait(timeout=10)                        # until FreeSWITCH's goodbye and close


def test_sim_fault_error_replies_refuse_the_command() -> None:
    def script(conn: Conn) -> None:
        conn.command("connect")
        assert conn.command("linger 5").reply_text == "-ERR simulated failure"
        assert conn.command("myevents").reply_text == "+OK Events Enabled"
        assert conn.command("api uuid_break x").reply_text == "-ERR no break today"
        conn.execute("answer")
        conn.send(b"sendmsg\ncall-command: hangup\n\n")
        conn.closed.wait(timeout=10)

    call, conn = run(script, Faults(error_replies={"linger": "-ERR simulated failure",
                                                   "api uuid_break": "-ERR no break today"}))
    api = next(f for f in conn.frames if f.content_type == "api/response")
    assert api.body == b"-ERR no break today\n"
    # The refused linger did not take effect: at hangup FreeSWITCH disconnects at once.
    assert frame_key(conn.frames[-1]) == ("text/disconnect-notice", "disconnect")
    assert not any(f.headers.get("Content-Disposition") == "linger" for f in conn.frames)


def test_sim_fault_split_writes_byte_by_byte() -> None:
    _, plain = run(normal_call, Faults())
    call, split = run(normal_call, Faults(split_writes=1))
    assert [frame_key(f) for f in split.frames] == [frame_key(f) for f in plain.frames]
    assert all(frame.writes == (1,) * len(frame.raw) for frame in call.frames_sent)
    assert split.reads > len(split.frames)                  # the controller saw pieces, not frames
    reparsed = EslParser().feed(bytes(split.raw))
    assert [frame_key(f) for f in reparsed] == [frame_key(f) for f in split.frames]
    assert call.outcome is not None and call.outcome.kind == "controller_hangup"


def test_sim_fault_random_small_writes() -> None:
    _, plain = run(normal_call, Faults())
    call, split = run(normal_call, Faults(random_split=True, split_writes=9, seed=7))
    assert [frame_key(f) for f in split.frames] == [frame_key(f) for f in plain.frames]
    sizes = [size for frame in call.frames_sent for size in frame.writes]
    assert max(sizes) <= 9 and len(set(sizes)) > 1
    assert all(sum(frame.writes) == len(frame.raw) for frame in call.frames_sent)


def test_sim_fault_drop_mid_reply() -> None:
    def script(conn: Conn) -> None:
        conn.command("connect")
        conn.send(b"myevents\n\n")
        conn.closed.wait(timeout=10)

    call, conn = run(script, Faults(drop_mid_reply="myevents"))
    assert [frame_key(f) for f in conn.frames] == [("command/reply", "+OK")]        # connect only
    assert conn.raw.endswith(encode_reply("+OK Events Enabled")[:30])              # half a reply
    assert call.state.socket_end_reason == "fault: dropped mid-reply"
    assert call.outcome is not None and call.outcome.kind == "fallback"


def test_sim_fault_hangup_while_an_execute_is_pending() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        conn.execute("playback", SHORT, wait=False)
        conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))
        conn.command("exit")

    call, conn = run(script, Faults(hangup_on_execute="sendmsg execute playback"))
    assert "playback" not in {e.get("Application") for e in conn.events("CHANNEL_EXECUTE")}
    assert call.state.heard == []
    assert call.outcome is not None and call.outcome.kind == "caller_hangup"


def test_sim_fault_garbage_after_a_reply() -> None:
    def script(conn: Conn) -> None:
        conn.send(b"connect\n\n")
        conn.closed.wait(timeout=10)
        assert conn.protocol_error is not None
        conn.close()

    garbage = b"\x00\xffnot ESL at all\n\n"
    call, conn = run(script, Faults(garbage_after="connect", garbage=garbage))
    assert conn.raw.endswith(b"Control: full\n\n" + garbage)
    assert [f.kind for f in call.frames_sent][:2] == ["reply", "garbage"]


def test_sim_fault_delayed_replies() -> None:
    call, conn = run(normal_call, Faults(delay_replies={"linger": 3.0}))
    received = {c.summary: c.at for c in call.transcript}
    replied = {f.name: f.at for f in call.frames_sent if f.kind == "reply"}
    assert replied["+OK will linger 5 seconds"] - received["linger 5"] >= 3.0       # simulated seconds
    assert call.outcome is not None and call.outcome.kind == "controller_hangup"
