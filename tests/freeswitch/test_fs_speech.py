"""Callers heard in time on the real FreeSWITCH: speech menus and the virtual secretary, with the
local providers (piper speaks the caller, pocketsphinx hears them, MiniLM + faiss retrieve, the
extractive reader answers), through the controller `make serve` runs.

Where these tests look at time they compare two measures of the same moment, FreeSWITCH's own
event clock and what the call record says; they never assert that something is fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from tests.support.controllers import product_dialplan
from tests.support.freeswitch import Caller, FreeSwitch, FsEvent
from tests.support.tenant_controller import (
    KNOWLEDGE,
    REPO,
    TenantController,
    caller_voice,
    ivr,
    say_wav,
    tenant_environment,
)

pytestmark = [pytest.mark.models, pytest.mark.slow]

TENANT = "tenant-a.example"
MENU_NUMBER, SECRETARY_NUMBER = "5002", "5003"

SPEECH_MENU = """
flow: speech-menu
start: menu
nodes:
  menu:
    type: menu
    prompt: "Say sales or support."
    input: [dtmf, speech]
    options:
      "1": {next: sales, words: [sales]}
      "2": {next: support, words: [support]}
    timeout: 5s
    speech_silence: 700ms
    max_attempts: 3
    no_input: "Sorry, I did not hear you."
    no_match: "Sorry, I did not get that."
    var: choice
    next: {failure: operator}
  sales: {type: transfer, to: "1001"}
  support: {type: transfer, to: "1002"}
  operator: {type: transfer, to: "1000"}
"""


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantController]:
    folder = tmp_path_factory.mktemp("tenant")
    with tenant_environment(folder) as url:
        controller = TenantController(folder, url)
        try:
            (folder / "speech-menu.yaml").write_text(SPEECH_MENU)
            secretary = (REPO / "tests" / "rag" / "flows" / "secretary.yaml").read_text()
            (folder / "secretary.yaml").write_text(secretary.replace("min_score: 0.3", "min_score: 0.2"))
            ivr("docs", "ingest", TENANT, str(KNOWLEDGE))
            ivr("flows", "publish", TENANT, str(folder / "speech-menu.yaml"))
            ivr("flows", "publish", TENANT, str(folder / "secretary.yaml"))
            ivr("tenants", "route", TENANT, MENU_NUMBER, "speech-menu")
            ivr("tenants", "route", TENANT, SECRETARY_NUMBER, "secretary")
            ivr("tenants", "reload", TENANT)
            yield controller
        finally:
            controller.stop()


@pytest.fixture(scope="module")
def voice() -> Any:
    return caller_voice()


@pytest.fixture()
def phone(fs: FreeSwitch, tenant: TenantController):
    for number in (MENU_NUMBER, SECRETARY_NUMBER):
        fs.install_dialplan(f"ivr-{number}", product_dialplan([tenant.target], number=number))
    return fs


def completion(caller: Caller, app: str, started: FsEvent) -> FsEvent:
    """The CHANNEL_EXECUTE_COMPLETE of the application whose CHANNEL_EXECUTE is ``started``."""
    uuid = started.get("Application-UUID")
    return caller.esl.wait_for(lambda e: e.name == "CHANNEL_EXECUTE_COMPLETE" and e.uuid == caller.b_uuid
                               and e.get("Application-UUID") == uuid, timeout=60, what=f"completion of {app}")


# ---------------------------------------------------------------------------------------------- menus


def test_a_spoken_option_is_chosen_and_the_heard_words_are_recorded(phone: FreeSwitch, tenant, voice,
                                                                    tmp_path: Path) -> None:
    caller = phone.call(MENU_NUMBER)
    caller.wait_app("record", timeout=60)
    caller.say(say_wav(voice, "support", tmp_path), wait=True)
    caller.wait_app("set", data="agent=1002", timeout=20)
    record = tenant.record(caller.b_uuid)
    (step,) = [s for s in record.path if s["node"] == "menu"]
    assert step["outcome"] == "2"
    assert [h["option"] for h in step["detail"]["heard"]] == ["2"]
    assert "support" in step["detail"]["heard"][0]["text"].split()


def test_a_silent_attempt_is_no_input_and_the_next_spoken_attempt_works(phone: FreeSwitch, tenant, voice,
                                                                        tmp_path: Path) -> None:
    caller = phone.call(MENU_NUMBER)
    caller.wait_app("record", timeout=60)                    # attempt 1: the caller says nothing
    caller.wait_app("record", nth=2, timeout=30)
    caller.say(say_wav(voice, "sales", tmp_path), wait=True)
    caller.wait_app("set", data="agent=1001", timeout=20)
    (step,) = [s for s in tenant.record(caller.b_uuid).path if s["node"] == "menu"]
    assert (step["outcome"], step["detail"]["attempts"], step["detail"]["no_input"]) == ("1", 2, 1)


def test_a_caller_who_starts_late_is_still_heard(phone: FreeSwitch, tenant, voice, tmp_path: Path) -> None:
    caller = phone.call(MENU_NUMBER)
    caller.wait_app("record", timeout=60)
    gevent.sleep(1.8)                                         # FreeSWITCH's own 1 s silence stop is gone
    caller.say(say_wav(voice, "sales", tmp_path), wait=True)
    caller.wait_app("set", data="agent=1001", timeout=20)
    (step,) = [s for s in tenant.record(caller.b_uuid).path if s["node"] == "menu"]
    assert (step["outcome"], step["detail"]["attempts"]) == ("1", 1)


# ---------------------------------------------------------------------------------------------- the secretary


def answered_turns(record: Any) -> list[dict[str, Any]]:
    return [t for t in record.turns if t.get("answer")]


def test_a_spoken_question_is_answered_from_the_documents_after_the_caller_stops(
        phone: FreeSwitch, tenant, voice, tmp_path: Path) -> None:
    caller = phone.call(SECRETARY_NUMBER)
    listening = caller.wait_app("record", timeout=60)
    stop = caller.say(say_wav(voice, "What are your opening hours?", tmp_path), wait=True)
    answer = caller.esl.wait_for(lambda e: e.name == "CHANNEL_EXECUTE" and e.uuid == caller.b_uuid
                                 and e.app in ("playback", "speak") and e.arrived > stop.arrived,
                                 timeout=30, what="the answer")
    done = completion(caller, "record", listening)
    assert done.get("variable_silence_hits_exhausted") != "true"    # our VAD ended it, not FreeSWITCH's timer
    completion(caller, "playback", answer)
    caller.hangup()
    record = tenant.record(caller.b_uuid)
    turn = answered_turns(record)[0]
    assert any("hours.md" in str(s) for s in turn["sources"]), turn
    # What the record says of the caller's wait agrees with FreeSWITCH's clock (end of the caller's
    # audio → the answer's first application) within a few frames of audio.
    fs_wait_ms = (answer.fs_time - stop.fs_time) * 1000
    recorded_ms = turn["latency_ms"]["end_of_speech_ms"] + turn["latency_ms"].get("playback_start_ms", 0.0)
    assert abs(fs_wait_ms - recorded_ms) < 400, (fs_wait_ms, turn["latency_ms"])


def test_a_long_question_is_heard_whole_and_not_answered_over_the_caller(phone: FreeSwitch, tenant, voice,
                                                                          tmp_path: Path) -> None:
    caller = phone.call(SECRETARY_NUMBER)
    caller.wait_app("record", timeout=60)
    question = ("Good morning, I am calling because my daughter has a check up next week and I wanted to ask "
                "what your opening hours are")
    start = caller.say(say_wav(voice, question, tmp_path))
    stop = caller.esl.wait_for(lambda e: e.name == "PLAYBACK_STOP" and e.uuid == caller.a_uuid
                               and e.arrived >= start.arrived, timeout=30, what="the end of the question")
    assert stop.fs_time - start.fs_time > 5.0                 # longer than FreeSWITCH's 64 KiB write buffer
    answer = caller.esl.wait_for(lambda e: e.name == "CHANNEL_EXECUTE" and e.uuid == caller.b_uuid
                                 and e.app == "playback" and e.arrived > start.arrived, timeout=40, what="the answer")
    assert answer.fs_time >= stop.fs_time                     # not while the caller was still speaking
    completion(caller, "playback", answer)
    caller.hangup()
    (turn, *_) = tenant.record(caller.b_uuid).turns
    assert "hours" in turn["caller"].split()                  # the end of the question was heard
    assert any("hours.md" in str(s) for s in turn["sources"])


def test_a_short_pause_mid_question_does_not_end_the_turn(phone: FreeSwitch, tenant, voice, tmp_path: Path) -> None:
    caller = phone.call(SECRETARY_NUMBER)
    caller.wait_app("record", timeout=60)
    wav = say_wav(voice, "Where is the clinic, and where can I park?", tmp_path, pause_after={"clinic,": 0.45})
    start = caller.say(wav)
    stop = caller.esl.wait_for(lambda e: e.name == "PLAYBACK_STOP" and e.uuid == caller.a_uuid
                               and e.arrived >= start.arrived, timeout=30, what="the end of the question")
    answer = caller.esl.wait_for(lambda e: e.name == "CHANNEL_EXECUTE" and e.uuid == caller.b_uuid
                                 and e.app == "playback" and e.arrived > start.arrived, timeout=40, what="the answer")
    assert answer.fs_time >= stop.fs_time                     # the pause did not end the turn
    completion(caller, "playback", answer)
    caller.hangup()
    turns = tenant.record(caller.b_uuid).turns
    assert len([t for t in turns if t.get("caller")]) == 1, turns
    assert "park" in turns[0]["caller"].split()


def test_speaking_over_the_answer_cuts_it_and_starts_the_next_turn(phone: FreeSwitch, tenant, voice,
                                                                   tmp_path: Path) -> None:
    caller = phone.call(SECRETARY_NUMBER)
    caller.wait_app("record", timeout=60)
    caller.say(say_wav(voice, "What are your opening hours?", tmp_path), wait=True)
    answer = caller.wait_app("playback", nth=2, timeout=40)   # 1: the greeting, 2: the answer
    gevent.sleep(0.8)
    interrupt = caller.say(say_wav(voice, "Where is the clinic?", tmp_path))
    cut = completion(caller, "playback", answer)
    assert cut.fs_time - interrupt.fs_time < 1.5              # cut while the caller spoke, not at its end
    follow = caller.esl.wait_for(lambda e: e.name == "CHANNEL_EXECUTE" and e.uuid == caller.b_uuid
                                 and e.app == "playback" and e.arrived > cut.arrived, timeout=40,
                                 what="the second answer")
    completion(caller, "playback", follow)
    caller.hangup()
    turns = tenant.record(caller.b_uuid).turns
    assert turns[0]["barge_in"] == "speech"
    assert any("location.txt" in str(s) for t in turns[1:] for s in t.get("sources", [])), turns


VOICEMAIL = """
flow: voicemail
start: vm
nodes:
  vm:
    type: record
    prompt: "Please leave a message after the tone."
    beep: true
    max_seconds: 30
    silence_seconds: 2
    transcribe: true
    transcript_var: message
    next: {recorded: thanks, empty: thanks}
  thanks: {type: hangup, say: "Thank you."}
"""


def test_a_voicemail_is_recorded_whole_and_transcribed(phone: FreeSwitch, tenant, voice, tmp_path: Path) -> None:
    flow = tmp_path / "voicemail.yaml"
    flow.write_text(VOICEMAIL)
    ivr("flows", "publish", TENANT, str(flow))
    ivr("tenants", "route", TENANT, "5004", "voicemail")
    ivr("tenants", "reload", TENANT)
    phone.install_dialplan("ivr-5004", product_dialplan([tenant.target], number="5004"))
    caller = phone.call("5004")
    caller.wait_app("record", timeout=60)
    caller.say(say_wav(voice, "Hello, this is Anna, please call me back about my appointment.", tmp_path), wait=True)
    hangup = caller.wait_hangup(timeout=60)
    assert hangup.get("Hangup-Cause") == "NORMAL_CLEARING"
    record = tenant.record(caller.b_uuid)
    (recording,) = record.recordings
    assert Path(recording["path"]).is_file() and recording["duration_ms"] > 3000
    assert "appointment" in (recording["transcript"] or "").split(), recording
