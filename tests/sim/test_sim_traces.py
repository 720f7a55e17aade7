"""The simulator against the real FreeSWITCH 1.10 captures: a scripted controller sends
exactly a trace's commands, and the simulator must answer with the same frames (kinds,
reply texts, event names, in order), the same header layout in every event and in the
``connect`` reply, and the key values the trace shows."""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sim_controller import Conn, ScriptedController, frame_key, is_park, patient, replay_trace, trace_frames
from trace_files import AUDIO, TRACES

from esl_controller.protocol import Frame
from esl_controller.simulator import (
    BridgeTarget,
    CallerScript,
    FreeSwitchSimulator,
    Hangup,
    Press,
    Silence,
    SimCall,
    Speak,
    Wait,
    WaitForApp,
)

SPEED = 40.0
TENANT_A = "11111111-1111-1111-1111-111111111111"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Case:
    caller: CallerScript = field(default_factory=patient)
    mode: str = "async full"
    bridge_targets: dict[str, BridgeTarget] = field(default_factory=dict)
    same_layout: bool = True


CASES: dict[str, Case] = {
    "a1": Case(), "b1": Case(), "c1": Case(), "j1": Case(), "j2": Case(), "k1": Case(), "k2": Case(),
    "l2": Case(), "g1": Case(),
    "b3": Case(mode="full"),
    "c2": Case(patient([WaitForApp("playback", 1), Wait(1.0), Press("#"),
                             WaitForApp("playback", 3), Wait(0.3), Press("5")])),
    "d1": Case(patient([WaitForApp("play_and_get_digits"), Wait(1.0), Press("1234#")])),
    "d2": Case(patient([WaitForApp("play_and_get_digits", 2), Wait(0.3), Press("3")])),
    "e1": Case(patient([WaitForApp("answer", started=False), Wait(0.5), Press("1"), Wait(0.5), Press("2#"),
                             Wait(0.5), Press("7", source="APP"), Wait(0.5), Press("9", duration_ms=400)])),
    "f1": Case(patient([WaitForApp("record"), Silence(1.0), Speak(AUDIO / "caller.wav", wait_for_record=False)])),
    "f2": Case(patient([WaitForApp("record"), Speak(AUDIO / "prompt_long.wav", block=False),
                             WaitForApp("record", 2), Wait(1.5), Press("#")])),
    "h1": Case(patient([WaitForApp("park"), Wait(0.5), Hangup()])),
    "h2": Case(patient([WaitForApp("park"), Wait(0.5), Hangup()])),
    "h3": Case(patient([WaitForApp("bridge"), Wait(3.0), Hangup()]), same_layout=False),
    "h4": Case(bridge_targets={"loopback/6000": BridgeTarget(talk_seconds=2.0)}),
    "i1": Case(patient([WaitForApp("playback"), Wait(1.5), Hangup()])),
    "i2": Case(patient([WaitForApp("playback"), Wait(1.5), Hangup()])),
}


def trace_path(name: str) -> Path:
    return next(TRACES.glob(f"{name}_*.txt"))


def replay(name: str, tmp_path: Path) -> tuple[SimCall, Conn]:
    case = CASES[name]
    path = trace_path(name)
    controller = ScriptedController(lambda conn: replay_trace(conn, path))
    sim = FreeSwitchSimulator(SPEED, path_map={"/srv/peer/audio": AUDIO, "/srv/peer/recordings": tmp_path})
    call = sim.place_call(f"{controller.target} {case.mode}", domain_uuid=TENANT_A, domain_name="tenant-a.example",
                          caller=case.caller, bridge_targets=case.bridge_targets)
    try:
        call.wait(30)
        controller.check()
    finally:
        call.kill()
        controller.stop()
    return call, controller.conns[0]


def _key(frame: Frame) -> tuple[str, str]:
    kind, text = frame_key(frame)
    return kind, _UUID.sub("<uuid>", text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sim_answers_like_the_trace(name: str, tmp_path: Path) -> None:
    call, conn = replay(name, tmp_path)
    recorded = [f for f in trace_frames(trace_path(name)) if not is_park(f)]
    simulated = [f for f in conn.frames if not is_park(f)]
    assert [_key(f) for f in simulated] == [_key(f) for f in recorded]
    assert list(simulated[0].headers) == list(recorded[0].headers)          # the connect reply's layout
    if CASES[name].same_layout:
        for real, ours in zip(recorded, simulated, strict=True):
            if real.event is not None:
                assert ours.event is not None
                assert list(ours.event.headers) == list(real.event.headers), real.event.name
    # The socket app's CHANNEL_PARK: exactly once, after the myevents reply (its position
    # races on the wire, so the comparison above leaves it out); a target extension's parks as recorded.
    def parks(frames: list[Frame], destination: str) -> list[int]:
        return [i for i, f in enumerate(frames) if is_park(f) and f.event["Caller-Destination-Number"] == destination]

    myevents = [i for i, f in enumerate(conn.frames) if f.reply_text == "+OK Events Enabled"]
    socket_parks = parks(conn.frames, "5000")
    if myevents and CASES[name].mode.startswith("async"):
        assert len(socket_parks) == 1 and socket_parks[0] > myevents[0]
    else:
        assert socket_parks == []
    assert len(parks(conn.frames, "6000")) == len(parks(trace_frames(trace_path(name)), "6000"))
    assert all(event.get("Unique-ID") == call.uuid for event in conn.events() if event.name != "BACKGROUND_JOB")


def test_sim_connect_reply_carries_this_call(tmp_path: Path) -> None:
    call, conn = replay("a1", tmp_path)
    reply = conn.frames[0]
    assert reply.headers["Unique-ID"] == call.uuid == reply.headers["Channel-Unique-ID"]
    assert reply.headers["Caller-Caller-ID-Number"] == "5551234"
    assert reply.headers["Caller-Destination-Number"] == "5000"
    assert reply.headers["variable_domain_uuid"] == TENANT_A
    assert reply.headers["variable_domain_name"] == "tenant-a.example"
    assert reply.headers["variable_current_application"] == "socket"
    assert reply.headers["variable_current_application_data"].endswith(" async full")
    assert (reply.headers["Socket-Mode"], reply.headers["Control"]) == ("async", "full")
    assert "Content-Length" not in reply.headers and reply.body == b""
    raw = call.frames_sent[0].raw
    assert raw.endswith(b"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n")
    assert [f.reply_text for f in conn.frames if f.content_type == "command/reply"][4:7] == [
        TENANT_A, "tenant-a.example", "-ERR command not found"]
    assert call.commands()[:4] == ["connect", "myevents", "linger", "divert_events on"]
    assert call.transcript[0].raw == b"connect\n\n"


def test_sim_event_sequence_increases(tmp_path: Path) -> None:
    call, conn = replay("c2", tmp_path)
    numbers = [int(e["Event-Sequence"]) for e in conn.events() if e.name != "DTMF"]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    dtmf = conn.events("DTMF")[0]
    completion = next(e for e in conn.events("CHANNEL_EXECUTE_COMPLETE") if e.get("Application") == "playback")
    # The terminator's DTMF was created before the completion but is delivered after it.
    assert int(dtmf["Event-Sequence"]) < int(completion["Event-Sequence"])
    assert conn.frames.index(next(f for f in conn.frames if f.event is dtmf)) > conn.frames.index(
        next(f for f in conn.frames if f.event is completion))


def test_sim_echoes_event_uuid(tmp_path: Path) -> None:
    _, conn = replay("b1", tmp_path)
    answer = [e for e in conn.events() if e.get("Application") == "answer"]
    assert [e.name for e in answer] == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]
    assert {e["Application-UUID"] for e in answer} == {"aaaaaaaa-0000-4000-8000-000000000001"}
    hangup = [e for e in conn.events() if e.get("Application") == "hangup"]
    assert len({e["Application-UUID"] for e in hangup}) == 1   # fresh, but the same on both events


def test_sim_playback_results(tmp_path: Path) -> None:
    call, conn = replay("c1", tmp_path)
    done = [e for e in conn.events("CHANNEL_EXECUTE_COMPLETE") if e.get("Application") == "playback"]
    assert [e["Application-Response"] for e in done] == ["FILE PLAYED", "FILE PLAYED", "FILE NOT FOUND"]
    assert done[0]["variable_playback_ms"] == "911" and done[0]["variable_playback_samples"] == "7289"
    assert len(conn.events("PLAYBACK_START")) == len(conn.events("PLAYBACK_STOP")) == 2
    assert [h.stop for h in call.state.heard] == ["done", "done", "not_found"]
    assert call.state.heard_what == ["/srv/peer/audio/prompt_short.wav"] * 2


def test_sim_playback_interrupted(tmp_path: Path) -> None:
    call, conn = replay("c2", tmp_path)
    done = [e for e in conn.events("CHANNEL_EXECUTE_COMPLETE") if e.get("Application") == "playback"]
    assert [e["Application-Response"] for e in done] == ["FILE PLAYED"] * 3
    assert done[0]["variable_playback_terminator_used"] == "#"
    assert "variable_playback_terminator_used" not in done[1].headers     # cleared when a playback starts
    assert int(done[0]["variable_playback_ms"]) < 11405                      # cut, in simulated ms
    raw = next(f.raw for f in call.frames_sent if f.kind == "event" and b"FILE%20PLAYED" in f.raw)
    assert b"variable_playback_terminator_used: %23\n" in raw                # URL-encoded like FreeSWITCH
    assert [e["DTMF-Digit"] for e in conn.events("DTMF")] == ["#", "5"]
    names = [f.event.name for f in conn.frames if f.event is not None]
    last_start = len(names) - 1 - names[::-1].index("PLAYBACK_START")
    assert names[last_start:last_start + 3] == ["PLAYBACK_START", "DTMF", "PLAYBACK_STOP"]  # not a terminator
    assert [h.stop for h in call.state.heard] == ["terminator", "break", "done"]


def test_sim_play_and_get_digits(tmp_path: Path) -> None:
    _, conn = replay("d1", tmp_path)
    done = next(e for e in conn.events("CHANNEL_EXECUTE_COMPLETE") if e.get("Application") == "play_and_get_digits")
    assert (done["variable_acct_digits"], done["variable_read_result"], done["Application-Response"]) == (
        "1234", "success", "_none_")
    names = [f.event.name for f in conn.frames if f.event is not None]
    position = names.index("CHANNEL_EXECUTE_COMPLETE", names.index("CHANNEL_EXECUTE", 3))
    assert names[position + 1: position + 6] == ["DTMF"] * 5
    assert [e["DTMF-Digit"] for e in conn.events("DTMF")] == list("1234#")


def test_sim_play_and_get_digits_failures(tmp_path: Path) -> None:
    _, conn = replay("d2", tmp_path)
    first, second = [e for e in conn.events("CHANNEL_EXECUTE_COMPLETE")
                     if e.get("Application") == "play_and_get_digits"]
    assert first["variable_read_result"] == "failure" and "variable_acct_digits" not in first.headers
    assert second["variable_acct_digits_invalid"] == "3" and second["variable_read_result"] == "failure"
    names = [f.event.name for f in conn.frames if f.event is not None]
    assert names.index("DTMF") < len(names) - 1 - names[::-1].index("CHANNEL_EXECUTE")  # at once, not deferred


def test_sim_record_writes_what_the_caller_said(tmp_path: Path) -> None:
    call, conn = replay("f1", tmp_path)
    stop = conn.events("RECORD_STOP")[0]
    assert stop["variable_silence_hits_exhausted"] == "true"
    [recording] = call.state.recordings
    with wave.open(recording.file, "rb") as written, wave.open(str(AUDIO / "caller.wav"), "rb") as said:
        assert (written.getnchannels(), written.getsampwidth(), written.getframerate()) == (1, 2, 8000)
        assert written.getnframes() == said.getnframes()           # the speech, without the silence around it
        assert written.readframes(written.getnframes()) == said.readframes(said.getnframes())
    assert stop["variable_record_samples"] == str(recording.samples)
    assert stop["variable_record_ms"] == str(recording.samples // 8)
    assert stop["variable_record_file_size"] == str(Path(recording.file).stat().st_size)
    assert recording.stop == "silence"


def test_sim_transfer_keeps_the_socket(tmp_path: Path) -> None:
    call, conn = replay("h1", tmp_path)
    names = [(e.name, e.get("Application")) for e in conn.events()]
    socket_done = names.index(("CHANNEL_EXECUTE_COMPLETE", "socket"))
    assert names[socket_done - 2: socket_done] == [("CHANNEL_EXECUTE_COMPLETE", "transfer"), ("CHANNEL_UNPARK", None)]
    after = conn.events()[socket_done + 1:]
    assert [e.get("Channel-State") for e in after[:2]] == ["CS_ROUTING", "CS_EXECUTE"]
    assert all(e["Caller-Destination-Number"] == "6000" for e in after)
    assert after[2]["variable_transfer_history"].endswith(":bl_xfer:6000/default/XML")
    assert call.outcome is not None and (call.outcome.kind, call.outcome.target) == ("transferred", "6000")


def test_sim_caller_hangup_mid_playback_with_linger(tmp_path: Path) -> None:
    call, conn = replay("i1", tmp_path)
    keys = [frame_key(f)[1] for f in conn.frames[5:]]
    assert keys[keys.index("CHANNEL_HANGUP"):keys.index("linger") + 1] == [
        "CHANNEL_HANGUP", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE", "CHANNEL_STATE", "CHANNEL_HANGUP_COMPLETE", "linger"]
    done = conn.events("CHANNEL_EXECUTE_COMPLETE")[-2:]
    assert [e["Application-Response"] for e in done] == ["PLAYBACK ERROR", "PLAYBACK ERROR"]
    notice = [f for f in conn.frames if f.content_type == "text/disconnect-notice"]
    assert notice[0].headers["Linger-Time"] == "-1" and notice[1].body.startswith(b"Disconnected, goodbye.")
    assert len(notice[1].body) == 67
    assert call.outcome is not None and call.outcome.kind == "caller_hangup"
    assert call.state.heard[0].stop == "hangup"


@pytest.mark.parametrize(("name", "cause"), [("j2", "USER_BUSY"), ("k1", "DESTINATION_OUT_OF_ORDER")])
def test_sim_hangups_without_execute_events(name: str, cause: str, tmp_path: Path) -> None:
    call, conn = replay(name, tmp_path)
    assert {e.get("Application") for e in conn.events("CHANNEL_EXECUTE")} == {"answer"}
    assert conn.events("CHANNEL_HANGUP")[0]["Hangup-Cause"] == cause
    assert call.outcome is not None and (call.outcome.kind, call.outcome.cause) == ("controller_hangup", cause)
