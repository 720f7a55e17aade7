"""`collect` and `record` end to end: digits into a variable (valid, invalid, too short, read-back
confirmed and rejected) and voicemail (a real WAV of what the caller said, silence, a terminator,
the maximum length, a hangup while recording), through the simulator over real TCP."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from test_e2e_nodes_rig import AUDIO, NodeRig, Placed

from esl_controller.simulator import Hangup, Press, Speak, Wait, WaitForApp

ACCOUNT_PROMPT = "Please enter your account number, then press pound."
NO_INPUT = "I didn't get any digits."
INVALID = "That is not a valid account number."


def spoken(placed: Placed) -> list[str]:
    return [w for w in placed.heard() if not w.startswith(("silence_stream://", "tone_stream://"))]


def samples_of(path: str | Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


# ---------------------------------------------------------------------------------------------- collect

def test_collect_valid_digits(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-collect") as rig:
        placed = rig.call([WaitForApp("play_and_get_digits"), Press("12345#")])
    assert placed.steps == [("account", "collected"), ("thanks", "hangup")]
    assert placed.record.vars["account"] == "12345"
    detail = placed.step("account")["detail"]
    assert (detail["attempts"], detail["no_input"], detail["invalid"], detail["length"]) == (1, 0, 0, 5)
    assert spoken(placed) == [ACCOUNT_PROMPT, "Thank you, account 1 2 3 4 5."]
    (pgd,) = placed.executes("play_and_get_digits")
    assert pgd.startswith("4 6 1 3000 # silence_stream://250 ")
    assert not [e for e in placed.logs if "12345" in repr(e)]           # digits are never logged


def test_collect_digits_typed_over_the_prompt(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-collect") as rig:
        placed = rig.call([WaitForApp("speak"), Wait(0.5), Press("4321#")])
    assert placed.record.vars["account"] == "4321"
    assert placed.call.state.heard[0].stop == "terminator"
    assert placed.executes("play_and_get_digits") == []


def test_collect_input_failing_the_pattern_is_invalid_then_retried(tmp_path: Path) -> None:
    script = [WaitForApp("play_and_get_digits", nth=1), Press("01234#"),
              WaitForApp("play_and_get_digits", nth=2), Press("5678#")]
    with NodeRig(tmp_path, "nodes-collect") as rig:
        placed = rig.call(script)
    assert placed.steps == [("account", "collected"), ("thanks", "hangup")]
    assert placed.record.vars["account"] == "5678"
    detail = placed.step("account")["detail"]
    assert (detail["attempts"], detail["no_input"], detail["invalid"]) == (2, 0, 1)
    assert spoken(placed) == [ACCOUNT_PROMPT, INVALID, ACCOUNT_PROMPT, "Thank you, account 5 6 7 8."]


def test_collect_twice_invalid_is_failure_and_removes_the_variable(tmp_path: Path) -> None:
    script = [WaitForApp("play_and_get_digits", nth=1), Press("0000#"),
              WaitForApp("play_and_get_digits", nth=2), Press("0001#")]
    with NodeRig(tmp_path, "nodes-collect") as rig:
        placed = rig.call(script)
    assert placed.steps == [("account", "failure"), ("failed", "hangup")]
    assert "account" not in placed.record.vars
    assert spoken(placed) == [ACCOUNT_PROMPT, INVALID, ACCOUNT_PROMPT, "Goodbye, no account."]


def test_collect_no_input_plays_the_no_input_prompt(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-collect") as rig:
        placed = rig.call([])
    assert placed.steps == [("account", "failure"), ("failed", "hangup")]
    detail = placed.step("account")["detail"]
    assert (detail["no_input"], detail["invalid"]) == (2, 0)
    assert spoken(placed) == [ACCOUNT_PROMPT, NO_INPUT, ACCOUNT_PROMPT, "Goodbye, no account."]


def test_collect_too_short_over_the_prompt_is_invalid(tmp_path: Path) -> None:
    script = [WaitForApp("speak"), Wait(0.5), Press("12#"), WaitForApp("play_and_get_digits"), Press("9876#")]
    with NodeRig(tmp_path, "nodes-collect") as rig:
        placed = rig.call(script)
    detail = placed.step("account")["detail"]
    assert (detail["attempts"], detail["no_input"], detail["invalid"]) == (2, 0, 1)
    assert spoken(placed)[1] == INVALID
    assert placed.record.vars["account"] == "9876"


def test_collect_too_short_after_the_prompt_is_invalid(tmp_path: Path) -> None:
    script = [WaitForApp("play_and_get_digits", nth=1), Press("12#"),
              WaitForApp("play_and_get_digits", nth=2), Press("9876#")]
    with NodeRig(tmp_path, "nodes-collect") as rig:
        placed = rig.call(script)
    assert placed.record.vars["account"] == "9876"
    detail = placed.step("account")["detail"]
    assert (detail["attempts"], detail["no_input"], detail["invalid"]) == (2, 0, 1)
    assert spoken(placed)[1] == INVALID


def test_collect_read_back_confirmed(tmp_path: Path) -> None:
    script = [WaitForApp("play_and_get_digits", nth=1), Press("1234"),
              WaitForApp("play_and_get_digits", nth=2), Press("1")]
    with NodeRig(tmp_path, "nodes-collect-confirm") as rig:
        placed = rig.call(script)
    assert placed.steps == [("pin", "collected"), ("thanks", "hangup")]
    assert placed.record.vars["pin"] == "1234"
    assert spoken(placed) == ["Enter your four digit PIN.",
                              "You entered 1 2 3 4. Press 1 to confirm, or 2 to enter it again.", "PIN accepted."]


def test_collect_read_back_rejected_then_entered_again(tmp_path: Path) -> None:
    script = [WaitForApp("play_and_get_digits", nth=1), Press("1234"),
              WaitForApp("play_and_get_digits", nth=2), Press("2"),
              WaitForApp("play_and_get_digits", nth=3), Press("5678"),
              WaitForApp("play_and_get_digits", nth=4), Press("1")]
    with NodeRig(tmp_path, "nodes-collect-confirm") as rig:
        placed = rig.call(script)
    assert placed.steps == [("pin", "collected"), ("thanks", "hangup")]
    assert placed.record.vars["pin"] == "5678"
    assert spoken(placed) == [
        "Enter your four digit PIN.", "You entered 1 2 3 4. Press 1 to confirm, or 2 to enter it again.",
        "Enter your four digit PIN.", "You entered 5 6 7 8. Press 1 to confirm, or 2 to enter it again.",
        "PIN accepted."]
    assert placed.step("pin")["detail"]["attempts"] == 2


def test_collect_read_back_rejected_every_time_is_failure(tmp_path: Path) -> None:
    script = [WaitForApp("play_and_get_digits", nth=1), Press("1234"),
              WaitForApp("play_and_get_digits", nth=2), Press("2"),
              WaitForApp("play_and_get_digits", nth=3), Press("5678"),
              WaitForApp("play_and_get_digits", nth=4), Press("2")]
    with NodeRig(tmp_path, "nodes-collect-confirm") as rig:
        placed = rig.call(script)
    assert placed.steps == [("pin", "failure"), ("failed", "hangup")]
    assert "pin" not in placed.record.vars


# ---------------------------------------------------------------------------------------------- record

def voicemail_file(rig: NodeRig, placed: Placed) -> Path:
    (path,) = (rig.recordings_dir).rglob(f"{placed.record.call_uuid}_voicemail_1.wav")
    return path


def test_record_keeps_what_the_caller_said(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-record") as rig:
        placed = rig.call([Speak(AUDIO / "caller.wav")])
        path = voicemail_file(rig, placed)
    assert placed.steps == [("voicemail", "recorded"), ("thanks", "hangup")]
    assert spoken(placed) == ["Leave a message after the tone.", "Thank you for your message."]
    assert "tone_stream://%(500,0,800)" in placed.executes("playback")      # the beep
    (record_arg,) = placed.executes("record")
    assert record_arg == f"{path} 6 200 2"
    said = samples_of(AUDIO / "caller.wav")
    assert np.array_equal(samples_of(path), said)                            # the caller's words, all of them
    (rec,) = placed.record.recordings
    assert rec["path"] == str(path) and rec["stop"] == "silence"
    assert rec["duration_ms"] == len(said) * 1000 // 8000
    assert placed.record.vars["voicemail_path"] == str(path)
    assert path.parent.parent.name == placed.record.tenant_key              # <recordings>/<tenant>/<day>/


def test_record_of_silence_is_empty_and_removed(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-record") as rig:
        placed = rig.call([])
        leftovers = list(rig.recordings_dir.rglob("*.wav"))
    assert placed.steps == [("voicemail", "empty"), ("nothing", "hangup")]
    assert placed.call.state.recordings[0].samples == 0
    assert placed.record.recordings == [] and leftovers == []
    assert spoken(placed)[-1] == "We got no message."


def test_record_stopped_by_the_terminator(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-record") as rig:
        placed = rig.call([Speak(AUDIO / "prompt_long.wav", block=False), Wait(2.0), Press("#")])
        path = voicemail_file(rig, placed)
    assert placed.steps == [("voicemail", "recorded"), ("thanks", "hangup")]
    (rec,) = placed.record.recordings
    assert rec["stop"] == "terminator"
    assert 1500 <= rec["duration_ms"] <= 2500
    assert len(samples_of(path)) * 1000 // 8000 == rec["duration_ms"]


def test_record_stopped_by_the_maximum_length(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-record") as rig:
        placed = rig.call([Speak(AUDIO / "prompt_long.wav")])
    (rec,) = placed.record.recordings
    assert rec["stop"] == "max_length"
    assert rec["duration_ms"] == 6060                                      # the limit, as FreeSWITCH does it


def test_hangup_while_recording_still_keeps_the_recording(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-record") as rig:
        placed = rig.call([Speak(AUDIO / "prompt_long.wav", block=False), Wait(2.0), Hangup()])
        path = voicemail_file(rig, placed)
    assert placed.record.outcome == "caller_hangup"
    assert placed.steps == [("voicemail", "caller_hangup")]
    (rec,) = placed.record.recordings
    assert rec["stop"] == "hangup" and rec["path"] == str(path)
    assert rec["duration_ms"] >= 1500
    assert len(samples_of(path)) > 0
