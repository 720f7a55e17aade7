"""`menu` end to end: every outcome, the retry prompts and counters, barge-in, type-ahead, and
speech through a Recognizer, with the simulator dialling into the real server over TCP."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_e2e_nodes_rig import NodeRig, Placed, SpeechBackend, ToneSynthesizer, speech_backend

from esl_controller.simulator import Press, Speak, Wait, WaitForApp

PROMPT = "Press 1 for sales, 2 for support, or 1 0 for the operator."
NO_INPUT = "Sorry, I didn't hear you."
NO_MATCH = "Sorry, that is not an option."
FAILED = "Goodbye, menu failed."


def spoken(placed: Placed) -> list[str]:
    """What the caller heard, without the short silences digits are read over."""
    return [w for w in placed.heard() if not w.startswith("silence_stream://")]


def counters(placed: Placed, node: str = "menu") -> tuple[int, int, int]:
    detail = placed.step(node)["detail"]
    return detail["attempts"], detail["no_input"], detail["no_match"]


@pytest.mark.parametrize(("keys", "node", "goodbye"), [("1", "sales", "Sales."), ("2", "support", "Support."),
                                                      ("10", "operator", "Operator.")])
def test_each_option(tmp_path: Path, keys: str, node: str, goodbye: str) -> None:
    with NodeRig(tmp_path, "nodes-menu") as rig:
        placed = rig.call([WaitForApp("play_and_get_digits"), Press(keys)])
    assert placed.steps == [("menu", keys), (node, "hangup")]
    assert placed.record.vars["choice"] == keys
    assert counters(placed) == (1, 0, 0)
    assert spoken(placed) == [PROMPT, goodbye]
    # flite speaks the prompt with every key as a terminator, then the digits are read over silence.
    assert placed.executes("play_and_get_digits")[0].startswith("1 2 1 3000 # silence_stream://250 ")


def test_failure_after_no_input_plays_the_no_input_prompt_between_attempts(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-menu") as rig:
        placed = rig.call([])
    assert placed.steps == [("menu", "failure"), ("failed", "hangup")]
    assert counters(placed) == (3, 3, 0)
    assert spoken(placed) == [PROMPT, NO_INPUT, PROMPT, NO_INPUT, PROMPT, FAILED]
    assert "choice" not in placed.record.vars


def test_failure_after_no_match_plays_the_no_match_prompt_between_attempts(tmp_path: Path) -> None:
    script = []
    for n in (1, 2, 3):
        script += [WaitForApp("play_and_get_digits", nth=n), Press("9")]
    with NodeRig(tmp_path, "nodes-menu") as rig:
        placed = rig.call(script)
    assert placed.steps == [("menu", "failure"), ("failed", "hangup")]
    assert counters(placed) == (3, 0, 3)
    assert spoken(placed) == [PROMPT, NO_MATCH, PROMPT, NO_MATCH, PROMPT, FAILED]


def test_no_input_then_no_match_then_a_valid_key(tmp_path: Path) -> None:
    script = [WaitForApp("play_and_get_digits", nth=2), Press("7"), WaitForApp("play_and_get_digits", nth=3),
              Press("2")]
    with NodeRig(tmp_path, "nodes-menu") as rig:
        placed = rig.call(script)
    assert placed.steps == [("menu", "2"), ("support", "hangup")]
    assert counters(placed) == (3, 1, 1)
    assert spoken(placed) == [PROMPT, NO_INPUT, PROMPT, NO_MATCH, PROMPT, "Support."]


def test_barge_in_over_a_flite_prompt(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-menu") as rig:
        placed = rig.call([WaitForApp("speak"), Wait(0.5), Press("2")])
    assert placed.steps == [("menu", "2"), ("support", "hangup")]
    prompt = placed.call.state.heard[0]
    assert prompt.what == PROMPT and prompt.stop == "terminator"
    assert prompt.played_ms < prompt.length_ms
    assert placed.executes("play_and_get_digits") == []          # the key that cut the prompt was the choice


def test_barge_in_over_a_synthesized_prompt(tmp_path: Path) -> None:
    tts = ToneSynthesizer(tmp_path / "tts")
    with NodeRig(tmp_path, "nodes-menu") as rig:
        rig.services["synthesizer"] = tts
        placed = rig.call([WaitForApp("play_and_get_digits"), Wait(0.5), Press("1")])
    wav = str(tts.files[PROMPT])
    (pgd,) = placed.executes("play_and_get_digits")
    assert pgd.split(" ")[5] == wav                               # one play_and_get_digits over the WAV
    prompt = placed.call.state.heard[0]
    assert prompt.what == wav and prompt.stop == "digit"
    assert prompt.played_ms < prompt.length_ms == tts.length_ms(PROMPT)
    assert placed.steps == [("menu", "1"), ("sales", "hangup")]


@pytest.mark.parametrize(("mode", "steps"), [
    ("keep", [("mode", "keep"), ("greet_keep", "done"), ("menu_keep", "2"), ("support", "hangup")]),
    ("flush", [("mode", "default"), ("greet_flush", "done"), ("menu_flush", "failure"), ("failed", "hangup")]),
])
def test_a_key_pressed_over_the_greeting_reaches_the_menu_only_with_type_ahead_keep(
        tmp_path: Path, mode: str, steps: list[tuple[str, str]]) -> None:
    with NodeRig(tmp_path, "nodes-typeahead") as rig:
        rig.vars["mode"] = mode
        placed = rig.call([WaitForApp("speak"), Wait(0.5), Press("2")])
    greeting = placed.call.state.heard[0]
    assert greeting.stop == "terminator" and greeting.played_ms < greeting.length_ms
    assert placed.steps == steps
    if mode == "keep":
        assert "Press 1 for sales or 2 for support." not in placed.heard()   # the key answered the menu


# ---------------------------------------------------------------------------------------------- speech
#
# The Recognizer: on this machine `providers.stt.pocketsphinx` and piper import, so the REAL local
# pocketsphinx recognizer decodes what FreeSWITCH recorded, and the caller's words are WAVs that
# piper synthesized (given to the caller with `Speak`).  Only where they do not import does
# `speech_backend` fall back to `WavCheckingRecognizer` (it reads the recorded WAV and checks it holds
# sound); `test_speech_backend_in_use` names the one that ran.

SPEECH_PROMPT = "Say sales or support, or press 1 or 2."
SPEECH_NO_INPUT = "Sorry, I didn't hear you."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechBackend:
    return speech_backend(tmp_path_factory.mktemp("speech"))


def test_speech_backend_in_use(speech: SpeechBackend) -> None:
    try:
        import piper  # noqa: F401
        import pocketsphinx  # noqa: F401
    except ImportError:
        assert speech.name == "wav-check"
    else:
        assert speech.name == "pocketsphinx"


@pytest.mark.parametrize(("word", "key", "node"), [("support", "2", "support"), ("sales", "1", "sales")])
def test_a_spoken_option_word_is_recognized(tmp_path: Path, speech: SpeechBackend, word: str, key: str,
                                            node: str) -> None:
    wav = speech.say(word)
    with NodeRig(tmp_path, "nodes-menu-speech") as rig:
        rig.services["recognizer"] = speech.recognizer
        before = len(speech.heard)
        placed = rig.call([Speak(wav)])
    assert placed.steps == [("menu", key), (node, "hangup")], (speech.heard[before:], placed.step("menu"))
    assert placed.record.vars["choice"] == key
    (recorded,) = placed.call.state.recordings
    assert recorded.samples > 0
    *_, (path, hints, samples, text) = speech.heard[before:]
    assert 0 < samples <= recorded.samples                       # what the caller said, heard from the live file
    assert hints == ["sales", "support"]
    assert word in text.split()
    assert not Path(path).exists() and not Path(recorded.path).exists()   # the utterance is not kept
    (record_arg,) = placed.executes("record")
    assert record_arg.split()[1] == "4"                          # utterance_max
    assert "sendmsg execute set enable_file_write_buffering=false" in placed.commands()   # live
    (heard,) = placed.step("menu")["detail"]["heard"]
    assert heard["option"] == key and word in heard["text"].split()


def test_a_key_over_the_speech_prompt_still_chooses(tmp_path: Path, speech: SpeechBackend) -> None:
    with NodeRig(tmp_path, "nodes-menu-speech") as rig:
        rig.services["recognizer"] = speech.recognizer
        placed = rig.call([WaitForApp("speak"), Wait(0.5), Press("2")])
    assert placed.steps == [("menu", "2"), ("support", "hangup")]
    assert placed.executes("record") == []


def test_a_key_during_the_utterance_counts_as_dtmf(tmp_path: Path, speech: SpeechBackend) -> None:
    with NodeRig(tmp_path, "nodes-menu-speech") as rig:
        rig.services["recognizer"] = speech.recognizer
        before = len(speech.heard)
        placed = rig.call([WaitForApp("record"), Wait(0.3), Press("1")])
    assert placed.steps == [("menu", "1"), ("sales", "hangup")]
    assert placed.call.state.recordings[0].stop == "terminator"
    assert speech.heard[before:] == []                           # nothing to transcribe


def test_silence_in_a_speech_menu_is_no_input(tmp_path: Path, speech: SpeechBackend) -> None:
    with NodeRig(tmp_path, "nodes-menu-speech") as rig:
        rig.services["recognizer"] = speech.recognizer
        before = len(speech.heard)
        placed = rig.call([])
    # Our VAD heard no speech: nothing went to the recognizer (an empty decode broke pocketsphinx once).
    assert speech.heard[before:] == []
    assert placed.steps == [("menu", "failure"), ("failed", "hangup")]
    assert counters(placed) == (2, 2, 0)
    assert placed.heard() == [SPEECH_PROMPT, SPEECH_NO_INPUT, SPEECH_PROMPT, FAILED]
    assert [r.samples for r in placed.call.state.recordings] == [0, 0]
