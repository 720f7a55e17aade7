"""collect (digits, pattern, attempts, read-back confirmation) and record (voicemail: beep,
recordings folder, empty, transcription, hangup while recording)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from flows_fakes import FakeCall, FakeRecognizer, digits, invalid_digits, make_ctx, no_digits, write_wav

from ivr_flows import FlowRunner, FlowValidationError, load_flow_text
from ivr_flows.call import CallEnded, RecordResult, RecordStop

COLLECT = """\
flow: c
start: ask
nodes:
  ask:
    type: collect
    prompt: "Enter your account number."
    var: account
    min_length: 4
    max_length: 6
    pattern: "^[1-9][0-9]+$"
    no_input: "No digits?"
    invalid: "Not valid."
    {extra}
    next: {{collected: ok, failure: nope}}
  ok: {{type: hangup}}
  nope: {{type: hangup}}
"""


def run(text: str, call: FakeCall, **options: object):  # type: ignore[no-untyped-def]
    ctx = make_ctx(call, **options)  # type: ignore[arg-type]
    return FlowRunner(load_flow_text(text, "t.yaml"), ctx).run(), ctx


def collect(extra: str = "timeout: 6s") -> str:
    return COLLECT.format(extra=extra)


def test_collect_digits_into_a_variable() -> None:
    call = FakeCall(play_and_get_digits=[digits("12345")])
    result, ctx = run(collect(), call)
    assert result.path == ["ask", "ok"]
    assert result.vars["account"] == "12345"
    pagd = call.of("play_and_get_digits")[0]
    assert (pagd["min_digits"], pagd["max_digits"], pagd["terminators"], pagd["timeout_ms"]) == (4, 6, "#", 6000)
    assert result.steps[0].detail == {"attempts": 1, "no_input": 0, "invalid": 0, "length": 5}
    assert "12345" not in repr(ctx.log.events)


def test_collect_retries_on_no_input_and_invalid_then_fails() -> None:
    call = FakeCall(play_and_get_digits=[no_digits(), digits("01234"), invalid_digits("12")])
    result, _ = run(collect(), call)
    assert result.path == ["ask", "nope"]
    assert "account" not in result.vars
    assert [c["text"] for c in call.of("speak")] == [
        "Enter your account number.",
        "No digits?",
        "Enter your account number.",
        "Not valid.",
        "Enter your account number.",
    ]
    assert result.steps[0].detail == {"attempts": 3, "no_input": 1, "invalid": 2}


def test_collect_pattern_is_a_full_match() -> None:
    call = FakeCall(play_and_get_digits=[digits("1234a"), digits("1234")])
    result, _ = run(collect("max_attempts: 2"), call)
    assert result.vars["account"] == "1234"


def test_collect_with_read_back_confirmation() -> None:
    call = FakeCall(play_and_get_digits=[digits("1234"), digits("2"), digits("5678"), digits("1")])
    result, _ = run(collect("confirm: true"), call)
    assert result.path == ["ask", "ok"]
    assert result.vars["account"] == "5678"
    spoken = [c["text"] for c in call.of("speak")]
    assert spoken[1] == "You entered 1 2 3 4. Press 1 to confirm, or 2 to enter it again."
    assert spoken[3] == "You entered 5 6 7 8. Press 1 to confirm, or 2 to enter it again."
    assert result.steps[0].detail["attempts"] == 2


def test_collect_custom_confirm_prompt_and_silent_confirmation_fails() -> None:
    extra = 'confirm: true\n    confirm_prompt: "Account {{ vars.account | spell }}? One for yes."\n    max_attempts: 1'
    call = FakeCall(play_and_get_digits=[digits("4321"), no_digits()])
    result, _ = run(collect(extra), call)
    assert [c["text"] for c in call.of("speak")][1] == "Account 4 3 2 1? One for yes."
    assert result.path == ["ask", "nope"]
    assert "account" not in result.vars


def test_collect_keeps_type_ahead_when_asked() -> None:
    call = FakeCall(typeahead="1", read_dtmf=["2", "3", "4", "#"])
    result, _ = run(collect("type_ahead: keep"), call)
    assert result.vars["account"] == "1234"
    assert call.of("speak") == []  # the typed-ahead key skipped the prompt
    call = FakeCall(typeahead="1", play_and_get_digits=[digits("9999")])
    result, _ = run(collect(), call)
    assert result.vars["account"] == "9999"


def test_collect_lengths_are_checked_at_load() -> None:
    text = collect().replace("min_length: 4", "min_length: 8")
    with pytest.raises(FlowValidationError) as caught:
        load_flow_text(text, "t.yaml")
    assert [str(i) for i in caught.value.errors] == [
        "t.yaml:4:3: node 'ask': min_length (8) is larger than max_length (6)"
    ]


VOICEMAIL = """\
flow: v
start: vm
nodes:
  vm:
    type: record
    prompt: "Leave a message after the tone."
    max_seconds: 90
    silence_seconds: 4
    min_seconds: 1
    transcribe: true
    var: vm_path
    transcript_var: vm_text
    next: {recorded: thanks, empty: bye}
  thanks: {type: say, text: "Thanks.", next: bye}
  bye: {type: hangup}
"""


def test_record_a_voicemail_with_transcription(tmp_path: Path) -> None:
    call = FakeCall(record_ms=4200)
    recognizer = FakeRecognizer("please call me back")
    at = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)
    result, _ = run(VOICEMAIL, call, recordings_dir=tmp_path, recognizer=recognizer, at=at)
    expected = tmp_path / "2026-05-04" / f"{call.info.uuid}_vm_1.wav"
    assert call.names()[:4] == ["answer", "speak", "playback", "record"]
    assert call.of("playback")[0]["path"].startswith("tone_stream://")
    assert call.of("record") == [{"path": str(expected), "max_seconds": 90, "silence_seconds": 4, "terminators": "#"}]
    assert result.path == ["vm", "thanks", "bye"]
    assert [(r.node, r.path, r.duration_ms, r.stop, r.transcript) for r in result.recordings] == [
        ("vm", str(expected), 4200, "silence", "please call me back")
    ]
    assert result.vars["vm_path"] == str(expected)
    assert result.vars["vm_text"] == "please call me back"
    assert result.as_dict()["recordings"][0]["transcript"] == "please call me back"


def test_record_without_beep_or_transcription(tmp_path: Path) -> None:
    text = VOICEMAIL.replace("transcribe: true", "transcribe: false\n    beep: false")
    call = FakeCall()
    recognizer = FakeRecognizer("never used")
    result, _ = run(text, call, recordings_dir=tmp_path, recognizer=recognizer)
    assert "playback" not in call.names()
    assert recognizer.requests == []
    assert result.recordings[0].transcript is None


def test_a_too_short_recording_is_empty_and_removed(tmp_path: Path) -> None:
    call = FakeCall(record=[RecordResult("", 400, RecordStop.SILENCE)])
    result, _ = run(VOICEMAIL, call, recordings_dir=tmp_path)
    assert result.path == ["vm", "bye"]
    assert result.steps[0].outcome == "empty"
    assert result.recordings == []
    assert not any(tmp_path.rglob("*.wav"))


def test_caller_hanging_up_while_recording_keeps_the_message(tmp_path: Path) -> None:
    call = FakeCall(record=[RecordResult("", 6000, RecordStop.HANGUP)])
    recognizer = FakeRecognizer("it's urgent")
    result, _ = run(VOICEMAIL, call, recordings_dir=tmp_path, recognizer=recognizer)
    assert result.outcome == "caller_hangup"
    assert [(r.duration_ms, r.stop, r.transcript) for r in result.recordings] == [(6000, "hangup", "it's urgent")]


def test_call_ended_raised_by_record_still_keeps_the_file(tmp_path: Path) -> None:
    class HangsUpMidRecording(FakeCall):
        def record(self, path: str, **kwargs: object) -> RecordResult:  # type: ignore[override]
            write_wav(path, 2500)
            self.gone = True
            raise CallEnded("hung up")

    call = HangsUpMidRecording()
    result, _ = run(VOICEMAIL, call, recordings_dir=tmp_path, recognizer=FakeRecognizer("hello"))
    assert result.outcome == "caller_hangup"
    assert [(r.duration_ms, r.stop, r.transcript) for r in result.recordings] == [(2500, "hangup", "hello")]


def test_record_without_a_recordings_folder_is_an_error() -> None:
    text = VOICEMAIL.replace("next: {recorded: thanks, empty: bye}", "next: {recorded: thanks, empty: bye, error: bye}")
    call = FakeCall()
    result, _ = run(text, call)
    assert result.path == ["vm", "bye"]
    assert result.steps[0].outcome == "error"
    assert "record" not in call.names()


def test_transcription_failure_keeps_the_recording(tmp_path: Path) -> None:
    call = FakeCall()
    result, ctx = run(VOICEMAIL, call, recordings_dir=tmp_path, recognizer=FakeRecognizer(RuntimeError("stt")))
    assert result.path == ["vm", "thanks", "bye"]
    assert result.recordings[0].transcript is None
    assert ctx.log.find("flow.record_stt_failed")
