"""The menu node: DTMF through play_and_get_digits, barge-in, type-ahead, multi-key options,
speech through record + Recognizer, separate no-input / no-match prompts and counters."""

from __future__ import annotations

import re
from pathlib import Path

from flows_fakes import (
    FakeCall,
    FakeRecognizer,
    FakeSynthesizer,
    cut_by,
    digits,
    invalid_digits,
    make_ctx,
    no_digits,
)

from ivr_flows import FlowRunner, load_flow_text
from ivr_flows.call import RecordResult, RecordStop

HEAD = "flow: m\nstart: menu\nnodes:\n"


def menu_flow(
    extra: str = "", *, options: str = '{"1": sales, "2": support}', inputs: str = "[dtmf]", speech_edge: bool = True
) -> str:
    edges = "failure: op, speech: ai" if "speech" in inputs and speech_edge else "failure: op"
    line = (
        f'  menu: {{type: menu, prompt: "Press 1 or 2", input: {inputs}, options: {options}, '
        f'no_input: "Nothing?", no_match: "Wrong.", next: {{{edges}}}{extra}}}\n'
    )
    tail = "".join(
        f"  {name}: {{type: hangup}}\n"
        for name in ("sales", "support", "ten", "op", "ai")
        if re.search(rf"\b{name}\b", line.split("prompt")[1])
    )
    return HEAD + line + tail


def run(text: str, call: FakeCall, **options: object):  # type: ignore[no-untyped-def]
    ctx = make_ctx(call, **options)  # type: ignore[arg-type]
    return FlowRunner(load_flow_text(text, "t.yaml"), ctx).run(), ctx


def test_dtmf_menu_with_a_synthesized_prompt_is_one_play_and_get_digits(tmp_path: Path) -> None:
    call = FakeCall(play_and_get_digits=[digits("2")])
    result, _ = run(menu_flow(", timeout: 4s, var: choice"), call, synthesizer=FakeSynthesizer(tmp_path))
    assert call.of("play_and_get_digits") == [
        {
            "prompt": str(tmp_path / "tts_1.wav"),
            "min_digits": 1,
            "max_digits": 1,
            "timeout_ms": 4000,
            "terminators": "",
            "digit_timeout_ms": 2000,
        }
    ]
    assert result.path == ["menu", "support"]
    assert result.vars["choice"] == "2"


def test_dtmf_menu_with_a_prompt_file(tmp_path: Path) -> None:
    prompts = Path(__file__).parent / "prompts"
    text = menu_flow().replace('prompt: "Press 1 or 2"', "prompt: {file: en/menu.wav}")
    call = FakeCall(play_and_get_digits=[digits("1")])
    result, _ = run(text, call, prompt_dir=prompts)
    assert call.of("play_and_get_digits")[0]["prompt"] == str((prompts / "en" / "menu.wav").resolve())
    assert result.path == ["menu", "sales"]


def test_flite_prompt_is_spoken_with_barge_in_then_digits_are_read() -> None:
    call = FakeCall(play_and_get_digits=[digits("1")])
    result, _ = run(menu_flow(), call)
    assert call.names() == ["answer", "flush_dtmf", "speak", "play_and_get_digits", "hangup"]
    assert call.of("speak")[0]["terminators"] == "0123456789*#"
    assert call.of("play_and_get_digits")[0]["prompt"] == "silence_stream://250"
    assert result.path == ["menu", "sales"]


def test_a_key_that_cuts_the_prompt_chooses_at_once() -> None:
    call = FakeCall(speak=[cut_by("2")])
    result, _ = run(menu_flow(), call)
    assert result.path == ["menu", "support"]
    assert call.of("play_and_get_digits") == []


def test_multi_key_options_read_the_rest_of_the_digits() -> None:
    call = FakeCall(speak=[cut_by("1")], read_dtmf=["0"])
    result, _ = run(menu_flow(options='{"1": sales, "10": ten}'), call)
    assert result.path == ["menu", "ten"]
    assert call.of("read_dtmf") == [{"timeout": 2.0}]
    call = FakeCall(speak=[cut_by("1")], read_dtmf=[None])
    result, _ = run(menu_flow(options='{"1": sales, "10": ten}'), call)
    assert result.path == ["menu", "sales"]
    call = FakeCall(speak=[cut_by("1")], read_dtmf=["#"])
    result, _ = run(menu_flow(options='{"1": sales, "10": ten}'), call)
    assert result.path == ["menu", "sales"]


def test_multi_key_options_use_the_terminator_in_play_and_get_digits() -> None:
    call = FakeCall(play_and_get_digits=[digits("10")])
    run(menu_flow(options='{"1": sales, "10": ten}'), call)
    assert call.of("play_and_get_digits")[0]["max_digits"] == 2
    assert call.of("play_and_get_digits")[0]["terminators"] == "#"


def test_type_ahead_keep_uses_keys_pressed_before_the_menu() -> None:
    call = FakeCall(typeahead="2")
    result, _ = run(menu_flow(", type_ahead: keep"), call)
    assert result.path == ["menu", "support"]
    assert call.names() == ["answer", "flush_dtmf", "hangup"]


def test_type_ahead_flush_discards_them() -> None:
    call = FakeCall(typeahead="2", play_and_get_digits=[digits("1")])
    result, _ = run(menu_flow(", type_ahead: flush"), call)
    assert result.path == ["menu", "sales"]


def test_no_input_and_no_match_prompts_and_counters() -> None:
    call = FakeCall(play_and_get_digits=[no_digits(), invalid_digits("5"), digits("9"), digits("1")])
    result, _ = run(menu_flow(", max_attempts: 5"), call)
    spoken = [c["text"] for c in call.of("speak")]
    assert spoken == ["Press 1 or 2", "Nothing?", "Press 1 or 2", "Wrong.", "Press 1 or 2", "Wrong.", "Press 1 or 2"]
    assert result.path == ["menu", "sales"]
    assert result.steps[0].detail == {"attempts": 4, "no_input": 1, "no_match": 2}


def test_separate_limits_for_no_input_and_no_match() -> None:
    call = FakeCall(play_and_get_digits=[no_digits(), no_digits()])
    result, _ = run(menu_flow(", max_attempts: 5, max_no_input: 2"), call)
    assert result.path == ["menu", "op"]
    assert result.steps[0].detail == {"attempts": 2, "no_input": 2, "no_match": 0}
    call = FakeCall(play_and_get_digits=[digits("7"), no_digits(), digits("8")])
    result, _ = run(menu_flow(", max_attempts: 5, max_no_match: 2"), call)
    assert result.steps[0].detail == {"attempts": 3, "no_input": 1, "no_match": 2}
    assert result.steps[0].outcome == "failure"


def test_a_key_pressed_during_the_retry_prompt_counts_for_the_next_attempt() -> None:
    call = FakeCall(play_and_get_digits=[no_digits()], speak=[None, cut_by("2")])  # type: ignore[list-item]
    result, _ = run(menu_flow(), call)
    assert result.path == ["menu", "support"]
    assert [c["text"] for c in call.of("speak")] == ["Press 1 or 2", "Nothing?"]


SPEECH_OPTIONS = '{"1": {next: sales, words: [sales, buy]}, "2": {next: support, words: [tech support, help]}}'


def test_speech_matches_option_words_with_hints(tmp_path: Path) -> None:
    recognizer = FakeRecognizer("I'd like some tech support please, not sales")
    call = FakeCall()
    result, _ = run(
        menu_flow(", var: choice", options=SPEECH_OPTIONS, inputs="[dtmf, speech]"),
        call,
        recognizer=recognizer,
        recordings_dir=tmp_path,
    )
    assert result.path == ["menu", "support"]
    assert result.vars["choice"] == "2"
    ((path, hints, existed),) = recognizer.requests
    assert hints == ["sales", "buy", "tech support", "help"]
    assert existed and not Path(path).exists()  # the utterance is deleted after transcription
    assert call.of("record")[0]["terminators"] == "0123456789*#"
    assert call.of("record")[0]["max_seconds"] == 5


def test_unmatched_speech_takes_the_speech_outcome_with_the_transcript(tmp_path: Path) -> None:
    recognizer = FakeRecognizer("what are your opening hours")
    result, _ = run(
        menu_flow(options=SPEECH_OPTIONS, inputs="[dtmf, speech]"),
        FakeCall(),
        recognizer=recognizer,
        recordings_dir=tmp_path,
    )
    assert result.path == ["menu", "ai"]
    assert result.vars["speech"] == "what are your opening hours"


def test_unmatched_speech_without_a_speech_edge_is_a_no_match(tmp_path: Path) -> None:
    text = menu_flow(options=SPEECH_OPTIONS, inputs="[dtmf, speech]", speech_edge=False)
    recognizer = FakeRecognizer("opening hours", "", "buy")
    call = FakeCall()
    result, _ = run(text, call, recognizer=recognizer, recordings_dir=tmp_path)
    assert result.path == ["menu", "sales"]
    detail = result.steps[0].detail
    # Speech the recognizer made nothing of is not understood (no_match), not silence (no_input).
    assert {k: detail[k] for k in ("attempts", "no_input", "no_match")} == {"attempts": 3, "no_input": 0, "no_match": 2}
    assert [(h["attempt"], h["text"], h["option"]) for h in detail["heard"]] == [
        (1, "opening hours", None), (2, "", None), (3, "buy", "1")]
    assert "speech" not in result.vars


def test_a_silent_attempt_is_no_input_and_never_reaches_the_recognizer(tmp_path: Path) -> None:
    recognizer = FakeRecognizer("sales")
    call = FakeCall(record_speech=False)
    result, _ = run(menu_flow(options=SPEECH_OPTIONS, inputs="[dtmf, speech]"), call, recognizer=recognizer,
                    recordings_dir=tmp_path)
    assert result.path == ["menu", "op"]
    assert result.steps[0].detail == {"attempts": 3, "no_input": 3, "no_match": 0}
    assert recognizer.requests == []


def test_a_key_during_the_utterance_is_dtmf_input(tmp_path: Path) -> None:
    call = FakeCall(record=[RecordResult("", 0, RecordStop.TERMINATOR, terminator="2")])
    recognizer = FakeRecognizer()
    result, _ = run(
        menu_flow(options=SPEECH_OPTIONS, inputs="[dtmf, speech]"), call, recognizer=recognizer, recordings_dir=tmp_path
    )
    assert result.path == ["menu", "support"]
    assert recognizer.requests == []


def test_recognizer_failure_counts_as_no_match(tmp_path: Path) -> None:
    recognizer = FakeRecognizer(RuntimeError("stt down"), "sales")
    result, ctx = run(
        menu_flow(options=SPEECH_OPTIONS, inputs="[dtmf, speech]"),
        FakeCall(),
        recognizer=recognizer,
        recordings_dir=tmp_path,
    )
    assert result.path == ["menu", "sales"]
    assert result.steps[0].detail["no_match"] == 1
    assert ctx.log.find("flow.menu_stt_failed")


def test_speech_menu_without_recognizer_works_as_dtmf() -> None:
    call = FakeCall(play_and_get_digits=[digits("1")])
    result, ctx = run(menu_flow(options=SPEECH_OPTIONS, inputs="[dtmf, speech]"), call)
    assert result.path == ["menu", "sales"]
    assert ctx.log.find("flow.menu_no_recognizer")


def test_speech_only_menu_without_recognizer_is_an_error() -> None:
    options = "{sales: {next: sales, words: [sales]}, support: {next: support, words: [support]}}"
    text = menu_flow(options=options, inputs="[speech]").replace("next: {failure: op", "next: {error: op, failure: op")

    result, _ = run(text, FakeCall())
    assert result.path == ["menu", "op"]
    assert result.steps[0].outcome == "error"


def test_speech_only_menu_by_name(tmp_path: Path) -> None:
    options = "{sales: {next: sales, words: [sales]}, support: {next: support, words: [support]}}"
    call = FakeCall()
    result, _ = run(
        menu_flow(options=options, inputs="[speech]"),
        call,
        recognizer=FakeRecognizer("Support!"),
        recordings_dir=tmp_path,
    )
    assert result.path == ["menu", "support"]
    assert call.of("record")[0]["terminators"] == ""
    assert call.of("speak")[0]["terminators"] == ""


def test_no_barge_in_plays_the_whole_prompt_first(tmp_path: Path) -> None:
    call = FakeCall(play_and_get_digits=[digits("1")])
    run(menu_flow(", barge_in: false"), call, synthesizer=FakeSynthesizer(tmp_path))
    assert call.names() == ["answer", "flush_dtmf", "playback", "play_and_get_digits", "hangup"]
    assert call.of("playback")[0]["terminators"] == ""
    assert call.of("play_and_get_digits")[0]["prompt"] == "silence_stream://250"
