"""`say`, `play`, `pause` and `hangup` end to end: the simulator dials into the real server over
TCP and records what FreeSWITCH was asked to play and what the caller heard."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_e2e_nodes_rig import AUDIO, NodeRig, ToneSynthesizer

from esl_controller.simulator import Hangup, WaitForApp

GREETING = "Hello Ada, welcome to the test line."


def test_say_without_synthesizer_is_spoken_by_flite(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-say") as rig:
        placed = rig.call()
    assert placed.executes("speak") == [f"flite|kal|{GREETING}"]
    assert placed.heard() == [GREETING]
    assert placed.call.state.heard[0].stop == "done"
    assert placed.steps == [("hello", "done"), ("bye", "hangup")]
    assert placed.record.outcome == "hangup"
    assert placed.outcome.kind == "controller_hangup" and placed.outcome.cause == "NORMAL_CLEARING"
    # The first prompt answered the call, once, before it was spoken.
    cmds = placed.call.commands()
    assert cmds.count("sendmsg execute answer") == 1
    assert cmds.index("sendmsg execute answer") < cmds.index(f"sendmsg execute speak flite|kal|{GREETING}")


def test_say_through_the_synthesizer_plays_its_wav(tmp_path: Path) -> None:
    tts = ToneSynthesizer(tmp_path / "tts")
    with NodeRig(tmp_path, "nodes-say") as rig:
        rig.services["synthesizer"] = tts
        placed = rig.call()
    assert tts.requests == [(GREETING, "en-US", None)]
    wav = str(tts.files[GREETING])
    assert placed.executes("playback") == [wav]
    assert placed.executes("speak") == []
    (heard,) = placed.call.state.heard
    assert (heard.kind, heard.what, heard.stop) == ("playback", wav, "done")
    assert heard.played_ms == heard.length_ms == tts.length_ms(GREETING)
    assert placed.step("hello")["detail"]["stop"] == "completed"
    assert placed.record.outcome == "hangup"


def test_say_falls_back_to_flite_when_freeswitch_cannot_play_the_synthesized_file(tmp_path: Path) -> None:
    tts = ToneSynthesizer(tmp_path / "tts", missing=True)
    with NodeRig(tmp_path, "nodes-say") as rig:
        rig.services["synthesizer"] = tts
        placed = rig.call()
    assert len(placed.executes("playback")) == 1                      # tried, FILE NOT FOUND
    assert placed.call.state.heard[0].stop == "not_found"
    assert placed.executes("speak") == [f"flite|kal|{GREETING}"]
    assert placed.heard() == [GREETING]
    assert placed.steps == [("hello", "done"), ("bye", "hangup")]
    assert placed.events("flow.tts_playback_failed")


def test_play_a_tenant_prompt_file_then_a_missing_one_takes_error(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-play") as rig:
        placed = rig.call()
        prompt = str((rig.prompt_dir / "prompt_short.wav").resolve())
        missing = str((rig.prompt_dir / "no_such_prompt.wav").resolve())
    assert placed.executes("playback") == [prompt, missing]
    first, second, third = placed.call.state.heard
    assert (first.what, first.stop, first.played_ms, first.length_ms) == (prompt, "done", 911, 911)
    assert (second.what, second.stop) == (missing, "not_found")
    assert third.what == "That prompt is missing."
    assert placed.steps == [("intro", "done"), ("missing", "error"), ("oops", "done"), ("bye", "hangup")]
    assert placed.step("missing")["detail"]["stop"] == "not_found"
    assert placed.record.outcome == "hangup"


def test_play_refuses_a_templated_name_that_leaves_the_prompt_folder(tmp_path: Path) -> None:
    shutil.copy(AUDIO / "prompt_short.wav", tmp_path / "outside.wav")   # a real WAV next to the prompt folder
    with NodeRig(tmp_path, "nodes-play") as rig:
        rig.vars["missing_prompt"] = "../outside.wav"
        placed = rig.call(errors_expected=True)      # the refusal is an exception in the node: logged
    assert all("outside" not in arg for arg in placed.executes("playback"))
    assert placed.steps == [("intro", "done"), ("missing", "error"), ("oops", "done"), ("bye", "hangup")]
    assert placed.step("missing")["detail"]["error"] == "PromptPathError"
    assert [e["log_level"] for e in placed.events("flow.node_failed")] == ["error"]


def test_pause_plays_silence_of_its_duration(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-pause") as rig:
        placed = rig.call()
    assert placed.executes("playback") == ["silence_stream://1500"]
    silence, after = placed.call.state.heard
    assert (silence.stop, silence.played_ms, silence.length_ms) == ("done", 1500, 1500)
    assert after.what == "After the pause."
    assert placed.steps == [("hush", "done"), ("after", "done"), ("bye", "hangup")]


def test_hangup_says_goodbye_then_hangs_up_with_its_cause_by_call_command(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-hangup") as rig:
        placed = rig.call()
    cmds = placed.call.commands()
    assert placed.heard() == ["Goodbye from the test line."]
    assert "sendmsg hangup USER_BUSY" in cmds
    assert cmds.index("sendmsg execute speak flite|kal|Goodbye from the test line.") < cmds.index(
        "sendmsg hangup USER_BUSY")
    assert not any(c.startswith("sendmsg execute hangup") for c in cmds)
    assert placed.outcome.kind == "controller_hangup" and placed.outcome.cause == "USER_BUSY"
    assert placed.call.state.hangup_cause == "USER_BUSY"
    assert placed.steps == [("bye", "hangup")]
    assert placed.step("bye")["detail"]["cause"] == "USER_BUSY"
    assert placed.record.outcome == "hangup"


def test_hangup_goodbye_cut_short_by_the_caller_is_a_caller_hangup(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-hangup") as rig:
        placed = rig.call([WaitForApp("speak"), Hangup()])
    assert placed.record.outcome == "caller_hangup"
    assert not placed.commands("sendmsg hangup")
