"""Applications, subscriptions, linger and the caller, against scripted controllers over TCP."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sim_controller import Conn, ScriptedController, frame_key, patient, until
from trace_files import AUDIO

from esl_controller.protocol import Event
from esl_controller.simulator import (
    BridgeTarget,
    CallerScript,
    DialplanSpec,
    FreeSwitchSimulator,
    Hangup,
    Press,
    SimCall,
    SimulatorConfigError,
    Speak,
    Wait,
    WaitForApp,
    WaitForCommand,
    run_call,
)
from esl_controller.simulator.audio import load_pcm8k

SPEED = 50.0
LONG = str(AUDIO / "prompt_long.wav")
SHORT = str(AUDIO / "prompt_short.wav")


def run(script: Callable[[Conn], None], caller: CallerScript | None = None, *,
        sim: FreeSwitchSimulator | None = None, mode: str = "async full", **options: object) -> tuple[SimCall, Conn]:
    controller = ScriptedController(script)
    simulator = sim or FreeSwitchSimulator(SPEED)
    call = simulator.place_call(f"{controller.target} {mode}", caller=caller or patient(), **options)  # type: ignore[arg-type]
    try:
        call.wait(20)
        controller.check()
    finally:
        call.kill()
        controller.stop()
    return call, controller.conns[0]


def hangup(conn: Conn, cause: str = "NORMAL_CLEARING") -> None:
    conn.send(f"sendmsg\ncall-command: hangup\nhangup-cause: {cause}\n\n".encode())
    conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))
    conn.command("exit")


def completion(conn: Conn, app: str) -> list[Event]:
    return [e for e in conn.events("CHANNEL_EXECUTE_COMPLETE") if e.get("Application") == app]


# ---------------------------------------------------------------------------- record

def _record(args: str, *, after: str = "") -> Callable[[Conn], None]:
    def script(conn: Conn) -> None:
        conn.start()
        conn.command("event plain RECORD_START RECORD_STOP")
        conn.execute("answer")
        conn.execute("set", "playback_terminators=#")
        conn.execute("record", args, timeout=15)
        if after != "caller hangs up":
            hangup(conn)
        else:
            conn.command("exit")

    return script


def test_sim_record_stops_at_max_seconds(tmp_path: Path) -> None:
    target = tmp_path / "max.wav"
    caller = patient([WaitForApp("set"), Speak(LONG, wait_for_record=False, block=False)])
    call, conn = run(_record(f"{target} 3 200 5"), caller)
    stop = conn.events("RECORD_STOP")[0]
    assert (stop["variable_record_ms"], stop["variable_record_samples"]) == ("3060", "24480")     # like f2
    assert stop["variable_silence_hits_exhausted"] == "false"
    written = load_pcm8k(target)
    said = load_pcm8k(LONG)
    offset = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(said, 64) == written[:64], axis=1))[0])
    assert np.array_equal(written, said[offset:offset + len(written)])        # a real slice of what was said
    assert call.state.recordings[0].stop == "max_length"


def test_sim_record_stopped_by_a_terminator(tmp_path: Path) -> None:
    target = tmp_path / "dtmf.wav"
    caller = patient([Speak(SHORT), Press("#")])
    call, conn = run(_record(f"{target} 20"), caller)
    done = completion(conn, "record")[0]
    assert done["variable_playback_terminator_used"] == "#"
    names = [f.event.name for f in conn.frames if f.event is not None]
    assert names[names.index("RECORD_STOP"):names.index("RECORD_STOP") + 3] == [
        "RECORD_STOP", "CHANNEL_EXECUTE_COMPLETE", "DTMF"]
    with wave.open(str(target)) as wav:
        assert wav.getnframes() == 7289                                        # prompt_short, said in full
    assert call.state.recordings[0].stop == "terminator"


def test_sim_record_survives_the_caller_hanging_up(tmp_path: Path) -> None:
    target = tmp_path / "hangup.wav"
    caller = patient([Speak(SHORT), Hangup()])
    call, conn = run(_record(f"{target} 30 200 5", after="caller hangs up"), caller)
    names = [f.event.name for f in conn.frames if f.event is not None]
    assert names.index("CHANNEL_HANGUP") < names.index("RECORD_STOP") < names.index("CHANNEL_EXECUTE_COMPLETE",
                                                                                      names.index("RECORD_STOP"))
    assert completion(conn, "record")[0]["variable_record_samples"] == "7289"
    assert target.is_file() and call.state.recordings[0].stop == "hangup"
    assert call.outcome is not None and call.outcome.kind == "caller_hangup"


def test_sim_speak_resamples_other_wav_formats(tmp_path: Path) -> None:
    stereo = tmp_path / "stereo16k.wav"
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype("<i2")
    with wave.open(str(stereo), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.repeat(tone, 2).tobytes())
    target = tmp_path / "resampled.wav"
    call, _ = run(_record(f"{target} 20 200 1"), patient([Speak(stereo)]))
    with wave.open(str(target)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (1, 8000, 8000)
    assert call.state.recordings[0].stop == "silence"


# ---------------------------------------------------------------------------- prompts and digits

def test_sim_stream_lengths_and_speak() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        conn.execute("playback", "tone_stream://L=3;%(100,100,440)")
        conn.execute("playback", "silence_stream://250")
        conn.execute("playback", "tone_stream://v=-7;%(250,0,440);%(250,0,480)")
        conn.execute("speak", "flite|kal|Hello there.")
        hangup(conn)

    call, conn = run(script)
    assert [e["variable_playback_ms"] for e in completion(conn, "playback")] == ["600", "250", "500"]
    assert call.state.heard[-1].kind == "speak" and call.state.heard[-1].what == "Hello there."
    assert call.state.heard[-1].length_ms == 65 * len("Hello there.")


def test_sim_play_and_get_digits_transfers_to_a_literal_none() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        conn.execute("play_and_get_digits", f"1 1 1 1000 # {SHORT} silence_stream://250 choice \\d 1000 None")
        conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))
        conn.command("exit")

    call, conn = run(script, patient([WaitForApp("park"), Hangup()]))
    assert call.outcome is not None and (call.outcome.kind, call.outcome.target) == ("transferred", "None")
    assert conn.events("CHANNEL_STATE")[0]["Caller-Destination-Number"] == "None"


def test_sim_small_applications() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        conn.execute("multiset", "a=1 b=2")
        conn.execute("export", "c=3")
        conn.execute("unset", "a")
        done = conn.execute("set", "b=")
        assert done is not None and "variable_b" not in done.headers and done["variable_export_vars"] == "c"
        assert conn.command("getvar c").reply_text == "3"
        conn.execute("sleep", "2000")                      # the caller presses 1 meanwhile: reported at once
        hangup(conn)

    call, conn = run(script, patient([WaitForApp("sleep"), Press("1")]))
    names = [(e.name, e.get("Application")) for e in conn.events()]
    assert names.index(("DTMF", None)) < names.index(("CHANNEL_EXECUTE_COMPLETE", "sleep"))
    assert call.state.variables["c"] == "3" and "a" not in call.state.variables


@pytest.mark.parametrize("flush", [True, False])
def test_sim_flush_dtmf_drops_type_ahead(flush: bool) -> None:
    def script(conn: Conn) -> None:
        conn.command("connect")                             # sync mode: nobody reads DTMF between commands
        conn.command("sendmsg\ncall-command: execute\nexecute-app-name: answer")
        until(lambda: len(holder[0].channel.dtmf) == 1)     # pressed, queued, not read by anyone
        if flush:
            conn.command("sendmsg\ncall-command: execute\nexecute-app-name: flush_dtmf")
        conn.command("sendmsg\ncall-command: execute\nexecute-app-name: play_and_get_digits\n"
                     "execute-app-arg: 1 1 1 500 # silence_stream://100 silence_stream://100 got \\d 500")
        assert conn.command("getvar read_result").reply_text == ("failure" if flush else "success")
        conn.command("exit")

    holder: list[SimCall] = []
    controller = ScriptedController(script)
    call = FreeSwitchSimulator(SPEED).place_call(f"{controller.target} full", caller=patient([Press("7")]))
    holder.append(call)
    try:
        call.wait(20)
        controller.check()
    finally:
        call.kill()
        controller.stop()


# ---------------------------------------------------------------------------- bridge

def test_sim_bridge_far_end_hangs_up_and_hangup_after_bridge_ends_the_call() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        conn.execute("set", "hangup_after_bridge=true")
        conn.execute("bridge", "sofia/gateway/pbx/1000")
        conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))
        conn.command("exit")

    call, conn = run(script, bridge_targets={"pbx/1000": BridgeTarget(ring_seconds=2, talk_seconds=5)})
    names = [e.name for e in conn.events()]
    start = names.index("CHANNEL_BRIDGE")
    assert names[start:start + 4] == [
        "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP", "CHANNEL_EXECUTE_COMPLETE"]
    assert conn.events("CHANNEL_BRIDGE")[0]["variable_originate_disposition"] == "SUCCESS"
    assert conn.events("CHANNEL_BRIDGE")[0]["Other-Leg-Destination-Number"] == "1000"
    assert conn.events("CHANNEL_UNBRIDGE")[0]["variable_bridge_hangup_cause"] == "NORMAL_CLEARING"
    assert call.outcome is not None
    assert (call.outcome.kind, call.outcome.target) == ("bridged", "sofia/gateway/pbx/1000")


def test_sim_bridge_busy_keeps_the_call_up() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        done = conn.execute("bridge", "loopback/2000/default")
        assert done is not None and done["variable_originate_disposition"] == "USER_BUSY"
        conn.execute("playback", SHORT)
        hangup(conn)

    call, conn = run(script, bridge_targets={"2000": BridgeTarget(answer=False, fail_cause="USER_BUSY")})
    assert conn.events("CHANNEL_BRIDGE") == []
    assert [(b.answered, b.disposition) for b in call.state.bridges] == [(False, "USER_BUSY")]
    assert call.outcome is not None and call.outcome.kind == "controller_hangup"


# ---------------------------------------------------------------------------- subscriptions and linger

def test_sim_sends_nothing_before_a_subscription_and_only_what_was_asked() -> None:
    def script(conn: Conn) -> None:
        conn.command("connect")
        conn.execute("answer", wait=False)
        until(lambda: holder[0].state.answered)     # no events to wait on yet: watch the simulator
        conn.command("myevents")
        conn.execute("playback", SHORT)
        conn.command("event plain ALL")
        conn.send(b"sendmsg\ncall-command: hangup\n\n")
        conn.closed.wait(timeout=10)                 # no linger: FreeSWITCH closes

    holder: list[SimCall] = []
    controller = ScriptedController(script)
    call = FreeSwitchSimulator(SPEED).place_call(f"{controller.target} async full", caller=patient())
    holder.append(call)
    call.wait(20)
    controller.check()
    conn = controller.conns[0]
    names = [e.name for e in conn.events()]
    assert "CHANNEL_ANSWER" not in names and "PLAYBACK_START" not in names
    assert any(e.name == "PLAYBACK_START" and not e.delivered for e in call.channel.events)
    assert "CHANNEL_CALLSTATE" in names                                   # with ALL
    assert names[0] == "CHANNEL_PARK"


def test_sim_linger_seconds_then_closes_by_itself() -> None:
    def script(conn: Conn) -> None:
        conn.start(linger=2)
        conn.execute("answer")
        conn.send(b"sendmsg\ncall-command: hangup\n\n")
        conn.closed.wait(timeout=10)

    call, conn = run(script)
    notices = [f for f in conn.frames if f.content_type == "text/disconnect-notice"]
    assert [(n.headers["Content-Disposition"], n.headers.get("Linger-Time")) for n in notices] == [
        ("linger", "2"), ("disconnect", None)]
    linger, bye = [f for f in call.frames_sent if f.kind == "notice"]
    assert bye.at - linger.at >= 2.0                                      # simulated seconds
    assert call.state.socket_end_reason == "linger time over"


def test_sim_without_linger_disconnects_at_hangup() -> None:
    def script(conn: Conn) -> None:
        conn.start(linger=None)
        conn.execute("answer")
        conn.send(b"sendmsg\ncall-command: hangup\n\n")
        conn.closed.wait(timeout=10)

    call, conn = run(script)
    assert [frame_key(f) for f in conn.frames[-2:]] == [
        ("text/event-plain", "CHANNEL_HANGUP_COMPLETE"), ("text/disconnect-notice", "disconnect")]
    assert call.state.socket_end_reason == "hangup"


# ---------------------------------------------------------------------------- the caller

def test_sim_caller_gives_up_when_nobody_answers() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.closed.wait(timeout=10)

    call, conn = run(script, patient(ring_timeout=10))
    assert call.outcome is not None and (call.outcome.kind, call.outcome.cause) == (
        "unanswered_timeout", "ORIGINATOR_CANCEL")
    assert conn.events("CHANNEL_HANGUP")[0]["Hangup-Cause"] == "ORIGINATOR_CANCEL"


def test_sim_caller_hangs_up_at_the_maximum_duration() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        conn.closed.wait(timeout=10)

    call, _ = run(script, patient(max_call_seconds=30))
    assert call.outcome is not None and call.outcome.kind == "caller_hangup"
    assert "hung up at the maximum call duration" in call.state.notes


def test_sim_caller_dtmf_api_and_interactive_control() -> None:
    def script(conn: Conn) -> None:
        data = conn.start()
        caller_leg = data.headers["variable_other_loopback_leg_uuid"]
        conn.execute("answer")
        assert conn.command(f"api uuid_send_dtmf {caller_leg} 12").reply_text == "+OK Success"
        conn.wait_for(lambda: len(conn.events("DTMF")) == 3)             # 1, 2 and the script's 9
        assert conn.command(f"api uuid_getvar {data.headers['Unique-ID']} domain_name").reply_text == "_undef_"
        assert conn.command(f"api uuid_kill {caller_leg}").reply_text == "+OK"
        conn.wait_for(lambda: bool(conn.events("CHANNEL_HANGUP_COMPLETE")))
        conn.command("exit")

    call, conn = run(script, patient([WaitForCommand(5), Press("9")]))
    assert sorted(e["DTMF-Digit"] for e in conn.events("DTMF")) == ["1", "2", "9"]
    assert call.state.digits_dialed and call.outcome is not None and call.outcome.kind == "caller_hangup"


def test_sim_run_call_places_and_waits() -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.execute("answer")
        conn.execute("playback", SHORT)
        hangup(conn, "NORMAL_CLEARING")

    controller = ScriptedController(script)
    try:
        call = run_call("127.0.0.1", controller.port, timeout=20, speed=SPEED, domain_name="tenant-b.example",
                        caller=patient())
        controller.check()
    finally:
        controller.stop()
    assert call.outcome is not None and call.outcome.kind == "controller_hangup"
    assert call.state.heard_what == [SHORT]
    assert call.transcript[0].line == "connect" and call.transcript[0].at >= 0


def test_sim_refuses_targets_outside_loopback() -> None:
    sim = FreeSwitchSimulator(SPEED)
    with pytest.raises(SimulatorConfigError):
        sim.place_call("192.0.2.10:8084 async full")
    with pytest.raises(SimulatorConfigError):
        sim.place_call(dialplan=DialplanSpec.socket_only("127.0.0.1:8084 async full"),
                       extensions={"x": (("socket", "127.0.0.1:8084|10.1.1.1:8084 async full"),)})
    with pytest.raises(SimulatorConfigError):
        CallerScript([Speak("/no/such/file.wav")])


def test_sim_commands_summary_and_wait(tmp_path: Path) -> None:
    def script(conn: Conn) -> None:
        conn.start()
        conn.send(b"sendmsg\ncall-command: execute\nexecute-app-name: playback\ncontent-type: text/plain\n"
                  + f"content-length: {len(SHORT)}\n\n{SHORT}".encode())
        conn.wait_for(lambda: bool(conn.events("CHANNEL_EXECUTE_COMPLETE")))
        hangup(conn, "USER_BUSY")

    call, _ = run(script, patient([Wait(1)], start="now"))
    assert call.commands() == ["connect", "myevents", "linger 5", f"sendmsg execute playback {SHORT}",
                               "sendmsg hangup USER_BUSY", "exit"]
    assert call.transcript[3].body == SHORT and call.transcript[3].header("call-command") == "execute"
