"""The simulator writes recordings while it records, as FreeSWITCH 1.10.12 was measured to (what
`ask_ai` and speech menus listen to): by default in 64 KiB steps (a 2.5 s utterance is not readable
until the end), frame by frame once ``enable_file_write_buffering=false`` (``record(live=True)``,
``record_session`` with the live variables); whole WAVs at the end either way."""

from __future__ import annotations

import socket
import wave
from pathlib import Path
from typing import Any

import gevent
import pytest
from trace_files import AUDIO

from esl_controller.server import EslServer
from esl_controller.session import CallSession
from esl_controller.simulator import CallerScript, FreeSwitchSimulator, Speak, WaitForApp
from ivr_flows.call import RecordStop
from ivr_flows.speech_audio import WavTail
from ivr_flows.speech_listen import RECORD_SESSION_LIVE


def watch(path: Path, seen: list[int], stop: list[bool]) -> None:
    tail = WavTail(path)
    while not stop:
        try:
            tail.read_new()
        except ValueError:
            pass
        seen.append(len(tail.pcm))
        gevent.sleep(0.02)


def run(handler: Any, caller: CallerScript) -> Any:
    server = EslServer("127.0.0.1", 0, handler)
    server.start()
    try:
        sim = FreeSwitchSimulator(speed=2.0)
        call = sim.place_call(socket_data=f"127.0.0.1:{server.address[1]} async full", caller=caller,
                              domain_uuid="11111111-1111-1111-1111-111111111111", domain_name="t.example")
        call.wait(30)
    finally:
        server.stop(deadline=2)
    return call


@pytest.mark.parametrize("live", [True, False])
def test_record_grows_while_it_records_only_when_live_and_ends_as_a_whole_wav(tmp_path: Path, live: bool) -> None:
    target = tmp_path / "utterance.wav"
    seen: list[int] = []
    results: dict[str, Any] = {}

    def handler(sock: socket.socket, address: Any) -> None:
        session = CallSession(sock, address)
        try:
            session.start()
            session.answer()
            stop: list[bool] = []
            watcher = gevent.spawn(watch, target, seen, stop)
            results["record"] = session.record(str(target), max_seconds=15, silence_seconds=2, live=live)
            results["during"] = max(seen) if seen else 0
            stop.append(True)
            watcher.join(timeout=2)
            session.hangup()
        finally:
            session.finish()

    call = run(handler, CallerScript([WaitForApp("record"), Speak(AUDIO / "caller.wav")]))
    record = results["record"]
    assert record.stop == RecordStop.SILENCE
    with wave.open(str(target), "rb") as w:
        frames = w.getnframes()
    assert frames == call.state.recordings[0].samples and frames > 0
    if live:
        assert results["during"] > 0                       # audio was readable before the record completed
        assert len({n for n in seen if 0 < n < frames * 2}) >= 2    # and it arrived in several steps
        assert "sendmsg execute set enable_file_write_buffering=false" in call.commands()
    else:
        assert results["during"] == 0                      # under 64 KiB: still in FreeSWITCH's buffer


@pytest.mark.parametrize("live", [True, False])
def test_record_session_captures_the_caller_during_playback_only_when_live(tmp_path: Path, live: bool) -> None:
    target = tmp_path / "background.wav"
    results: dict[str, Any] = {}
    arg = f"{target} +60 {RECORD_SESSION_LIVE}" if live else str(target)

    def handler(sock: socket.socket, address: Any) -> None:
        session = CallSession(sock, address)
        try:
            session.start()
            session.answer()
            session.execute("set", "RECORD_READ_ONLY=true")
            session.execute("record_session", arg)
            results["played"] = session.playback(str(AUDIO / "prompt_short.wav"))
            results["during"] = len(WavTail(target).read_new())
            session.execute("stop_record_session", str(target))
            session.hangup()
        finally:
            session.finish()

    call = run(handler, CallerScript([WaitForApp("playback"), Speak(AUDIO / "caller.wav", wait_for_record=False,
                                                                     block=False)]))
    assert (results["during"] > 0) is live
    with wave.open(str(target), "rb") as w:
        assert w.getnframes() > 0 and w.getframerate() == 8000
    assert "sendmsg execute record_session " + arg in call.commands()
