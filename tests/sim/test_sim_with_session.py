"""The simulator dialling into the project's real outbound server (`EslServer`) driven by the
real `CallSession`: what FreeSWITCH would have seen, and what the session got back."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from sim_controller import patient
from trace_files import AUDIO

from esl_controller.server import EslServer
from esl_controller.session import CallSession
from esl_controller.simulator import DialplanSpec, FreeSwitchSimulator, Press, Speak, WaitForApp
from ivr_flows.call import DigitsStatus, PlaybackStop, RecordStop

SPEED = 50.0


def test_sim_drives_the_real_call_session(tmp_path: Path) -> None:
    results: dict[str, Any] = {}
    recording = tmp_path / "message.wav"

    def handler(sock: socket.socket, address: Any) -> None:
        session = CallSession(sock, address)
        try:
            results["info"] = session.start()
            session.answer()
            results["played"] = session.playback(str(AUDIO / "prompt_short.wav"))
            results["digits"] = session.play_and_get_digits(str(AUDIO / "prompt_digits.wav"), min_digits=1,
                                                            max_digits=4, timeout_ms=3000, terminators="#")
            results["record"] = session.record(str(recording), max_seconds=15, silence_seconds=2)
            session.hangup()
        finally:
            session.finish()

    server = EslServer("127.0.0.1", 0, handler)
    server.start()
    try:
        sim = FreeSwitchSimulator(SPEED)
        caller = patient([WaitForApp("play_and_get_digits"), Press("42#"), Speak(AUDIO / "caller.wav")])
        call = sim.place_call(dialplan=DialplanSpec.shipped([f"127.0.0.1:{server.address[1]}"]), caller=caller,
                              domain_uuid="11111111-1111-1111-1111-111111111111", domain_name="tenant-a.example")
        outcome = call.wait(30)
    finally:
        server.stop(deadline=2)
    info = results["info"]
    assert (info.uuid, info.domain_name) == (call.uuid, "tenant-a.example")
    assert results["played"].stop == PlaybackStop.COMPLETED and results["played"].played_ms == 911
    assert (results["digits"].status, results["digits"].digits) == (DigitsStatus.SUCCESS, "42")
    assert results["record"].stop == RecordStop.SILENCE and recording.is_file()
    assert results["record"].duration_ms == call.state.recordings[0].ms
    # What FreeSWITCH saw: connect first, the watchdog cancelled before anything else ran.
    commands = call.commands()
    assert commands[0] == "connect"
    executes = [c for c in commands if c.startswith("sendmsg execute")]
    assert executes[0] == "sendmsg execute sched_cancel"
    assert "sendmsg hangup NORMAL_CLEARING" in commands
    assert (outcome.kind, outcome.cause) == ("controller_hangup", "NORMAL_CLEARING")
    assert call.state.transferred_to is None and call.state.fallback_extension is None
