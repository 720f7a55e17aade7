"""`CallSession` against the recorded bytes of real FreeSWITCH 1.10 calls, over real TCP."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest
from trace_files import TRACES
from trace_replay import TraceReplayPeer, command_kind

from esl_controller.errors import CallGone
from esl_controller.server import EslServer
from esl_controller.session import CallSession, SessionSettings
from ivr_flows.call import DigitsStatus, PlaybackStop, RecordStop


def replay(trace: str, body: Callable[[CallSession], object], *, stop_before: str | None = None):
    """Run ``body(session)`` in a server call while the trace is replayed; return (result, peer)."""
    box: dict[str, object] = {}

    def handler(sock, address):
        session = CallSession(sock, address, settings=SessionSettings(command_timeout=3, dtmf_swallow_seconds=1))
        try:
            box["info"] = session.start()
            box["result"] = body(session)
        except BaseException as exc:
            box["error"] = exc
        finally:
            box["session"] = session
            session.finish()

    server = EslServer("127.0.0.1", 0, handler, max_calls=4)
    server.start()
    peer = TraceReplayPeer(TRACES / trace, server.address, stop_before=stop_before)
    g = gevent.spawn(peer.run)
    try:
        g.join(timeout=20)
        assert g.dead, "replay did not finish"
        server.calls.join(timeout=10)
    finally:
        server.stop(deadline=1)
    return box, peer


def kinds(peer: TraceReplayPeer) -> list[str]:
    return [command_kind(c) for c in peer.received]


def test_handshake_cancels_the_watchdog_first_and_reads_tenant_variables():
    box, peer = replay("a1_handshake_myevents.txt", lambda s: None)
    assert kinds(peer)[:4] == ["connect", "sendmsg execute sched_cancel", "myevents", "linger"]
    assert peer.received[3] == b"linger 30\n\n"
    info = box["info"]
    assert info.domain_uuid == "11111111-1111-1111-1111-111111111111"
    assert info.domain_name == "tenant-a.example"
    assert info.caller_number == "5551234" and info.destination_number == "5000"
    assert kinds(peer)[-1] == "exit"


def test_getvar_returns_values_and_none_for_unset():
    def body(s):
        return s.get_variable("domain_uuid"), s.get_variable("domain_name"), s.get_variable("no_such_variable")

    box, _ = replay("a1_handshake_myevents.txt", body)
    assert box["result"] == ("11111111-1111-1111-1111-111111111111", "tenant-a.example", None)


def test_sync_socket_is_refused():
    from esl_controller.errors import SyncModeRefused
    box, peer = replay("b3_sync_socket_and_async_header.txt", lambda s: None)
    assert isinstance(box["error"], SyncModeRefused)
    assert "async full" in str(box["error"])
    assert "sendmsg execute answer" not in kinds(peer)


def test_answer_is_paired_by_application_uuid():
    def body(s):
        s.answer()
        return s.answered_at

    box, peer = replay("b1_execute_answer_async_socket.txt", body)
    assert "error" not in box, box.get("error")
    assert box["result"] is not None
    sent = next(c for c in peer.received if b"execute-app-name: answer" in c)
    assert b"Event-UUID: " in sent and b"event-lock: true" in sent


def test_playback_to_completion_and_file_not_found():
    def body(s):
        s.answer()
        return [s.playback("/srv/peer/audio/prompt_short.wav"), s.playback("/srv/peer/audio/prompt_short.wav"),
                s.playback("/srv/peer/audio/does_not_exist.wav")]

    box, _ = replay("c1_playback_to_completion.txt", body)
    first, second, missing = box["result"]
    assert first.stop is PlaybackStop.COMPLETED and first.played_ms == 911
    assert second.stop is PlaybackStop.COMPLETED
    assert missing.stop is PlaybackStop.NOT_FOUND


def test_playback_cut_by_terminator_reports_the_digit_and_keeps_it_out_of_the_queue():
    def body(s):
        s.answer()
        result = s.playback("/srv/peer/audio/prompt_long.wav", terminators="#*")
        return result, s.read_dtmf(timeout=0.3)

    box, peer = replay("c2_playback_interrupted.txt", body, stop_before="api uuid_break")
    result, late = box["result"]
    assert result.stop is PlaybackStop.TERMINATOR and result.terminator == "#"
    assert late is None, "the terminator's late DTMF event must not become type-ahead"
    assert any(b"playback_terminators=#*" in c for c in peer.received)


def test_play_and_get_digits_collected_and_late_dtmf_swallowed():
    def body(s):
        s.answer()
        got = s.play_and_get_digits("/srv/peer/audio/prompt_digits.wav", min_digits=1, max_digits=4, tries=2,
                                    timeout_ms=5000, terminators="#", regex=r"\d+", digit_timeout_ms=2000)
        return got, s.read_dtmf(timeout=0.3)

    box, peer = replay("d1_play_and_get_digits_collected.txt", body)
    got, late = box["result"]
    assert got.status is DigitsStatus.SUCCESS and got.digits == "1234"
    assert late is None
    sent = next(c for c in peer.received if b"play_and_get_digits" in c).decode()
    arg = next(line for line in sent.split("\n") if line.startswith("execute-app-arg")).split(": ", 1)[1]
    assert arg.split(" ")[:5] == ["1", "4", "2", "5000", "#"]
    assert "None" not in arg.split(" ") and len(arg.split(" ")) == 10


def test_play_and_get_digits_timeout_then_invalid():
    def body(s):
        s.answer()
        a = s.play_and_get_digits("/srv/peer/audio/prompt_short.wav", max_digits=4, timeout_ms=2000)
        b = s.play_and_get_digits("/srv/peer/audio/prompt_short.wav", max_digits=1, tries=2, timeout_ms=1500,
                                  regex="^9$", invalid_prompt="/srv/peer/audio/prompt_short.wav")
        return a, b

    box, _ = replay("d2_play_and_get_digits_timeout.txt", body)
    a, b = box["result"]
    assert a.status is DigitsStatus.TIMEOUT
    assert b.status is DigitsStatus.INVALID


def test_record_stops_on_silence_and_on_max_then_terminator():
    def f1(s):
        s.answer()
        return s.record("/srv/peer/recordings/x.wav", max_seconds=15, silence_threshold=200, silence_seconds=2)

    box, _ = replay("f1_record_silence_stop.txt", f1)
    rec = box["result"]
    assert rec.stop is RecordStop.SILENCE and rec.duration_ms == 2520

    def f2(s):
        s.answer()
        first = s.record("/srv/peer/recordings/a.wav", max_seconds=3, silence_seconds=5, terminators="")
        second = s.record("/srv/peer/recordings/b.wav", max_seconds=20, terminators="#")
        return first, second, s.read_dtmf(timeout=0.3)

    box, _ = replay("f2_record_max_seconds_and_dtmf_stop.txt", f2)
    first, second, late = box["result"]
    assert first.stop is RecordStop.MAX_LENGTH and first.duration_ms == 3060 and first.size_bytes == 49004
    assert second.stop is RecordStop.TERMINATOR and second.terminator == "#" and second.duration_ms == 1500
    assert late is None


def test_idle_dtmf_is_queued_in_order():
    def body(s):
        s.answer()
        return [s.read_dtmf(timeout=1) for _ in range(5)]

    box, _ = replay("e1_dtmf_while_idle.txt", body)
    assert box["result"] == ["1", "2", "#", "7", "9"]


def test_caller_hangup_mid_playback_raises_call_gone_once_and_wakes_waiters():
    woken = []

    def body(s):
        s.answer()
        waiter = gevent.spawn(lambda: s.read_dtmf(timeout=10))
        try:
            s.playback("/srv/peer/audio/prompt_long.wav")
        except CallGone as exc:
            waiter.join(timeout=2)
            woken.append(waiter.exception)
            return exc
        return None

    box, peer = replay("i1_caller_hangup_mid_playback_linger.txt", body)
    gone = box["result"]
    assert isinstance(gone, CallGone) and gone.reason == "hangup"
    assert box["session"].hangup_cause == "NORMAL_CLEARING"
    assert isinstance(woken[0], CallGone)
    assert kinds(peer)[-1] == "exit"


def test_transfer_sets_socket_resume_false_first():
    def body(s):
        s.answer()
        s.transfer("6000", dialplan="XML", context="default")
        return s.transferred

    box, peer = replay("h1_transfer_app_to_6000.txt", body)
    assert box["result"] is True
    cmds = [c.decode() for c in peer.received]
    resume = next(i for i, c in enumerate(cmds) if "socket_resume=false" in c)
    transfer = next(i for i, c in enumerate(cmds) if "execute-app-name: transfer" in c)
    assert resume < transfer
    assert "execute-app-arg: 6000 XML default" in cmds[transfer]


def test_bridge_reports_success_then_caller_hangup():
    def body(s):
        s.answer()
        return s.bridge("{origination_caller_id_number=5000}loopback/6000/default")

    box, peer = replay("h3_bridge_loopback_6000.txt", body)
    result = box["result"]
    assert result.answered and result.disposition == "SUCCESS"
    assert any(b"socket_resume=false" in c for c in peer.received)


def test_hangup_by_call_command():
    def body(s):
        s.answer()
        s.hangup("USER_BUSY")
        return s.gone

    box, peer = replay("j2_controller_hangup_call_command.txt", body)
    assert box["result"] is True and box["session"].hangup_cause == "USER_BUSY"
    assert b"sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n" in peer.received


def test_unknown_application_ends_the_call_with_its_cause():
    def body(s):
        s.answer()
        s.execute("no_such_application", "foo", timeout=5)

    box, _ = replay("k1_execute_unknown_application.txt", body)
    assert isinstance(box["error"], CallGone)
    assert box["session"].hangup_cause == "DESTINATION_OUT_OF_ORDER"


def test_speak_completes():
    def body(s):
        s.answer()
        return s.speak("Hello from flite", engine="flite", voice="kal")

    box, _ = replay("g1_speak_tts.txt", body)
    assert box["result"].stop is PlaybackStop.COMPLETED


def test_err_replies_raise_command_error():
    from esl_controller.errors import CommandError

    def body(s):
        with pytest.raises(CommandError) as info:
            s.api("no_such_command arg1")
        assert "Command not found" in info.value.reply
        return "checked"

    box, _ = replay("k2_errors_api_and_malformed.txt", body)
    assert box.get("result") == "checked", box.get("error")
