"""End to end with only local providers: a simulated FreeSWITCH dials into the real controller; the
caller's questions are spoken by piper, heard by pocketsphinx, answered from the example tenant's
documents (MiniLM + faiss, the offline extractive answerer), and spoken back by piper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rag_harness import KNOWLEDGE, SecretaryRig, caller_voice, caller_wav, make_database

from esl_controller.simulator import CallerScript, Press, Speak, Wait, WaitForApp
from rag.faiss_index import FaissIndex
from rag.ingest import Ingester
from rag.retriever import Retriever
from rag.services import secretary_services

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def secretary(tmp_path_factory: pytest.TempPathFactory, local_providers: Any) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("e2e")
    _engine, stores = make_database(folder, "dental.example", "bakery.example")
    dental, bakery = stores["dental.example"], stores["bakery.example"]
    index = FaissIndex(folder / "rag", dental.tenant_id)
    reports = Ingester(dental, index, local_providers.embeddings).ingest([KNOWLEDGE])
    assert {r.status for r in reports} == {"added"}
    bread = folder / "bread.md"
    bread.write_text("# Opening hours\n\nThe bakery opens at 6 am every day, Saturdays included.\n")
    bakery_index = FaissIndex(folder / "rag", bakery.tenant_id)
    Ingester(bakery, bakery_index, local_providers.embeddings).ingest([bread])
    voice = caller_voice()
    return {"folder": folder, "providers": local_providers,
            "retriever": Retriever(dental, index, local_providers.embeddings),
            "bakery": Retriever(bakery, bakery_index, local_providers.embeddings),
            "say": lambda text: caller_wav(voice, text, folder / "voice")}


@pytest.fixture
def rig(tmp_path: Path, secretary: dict[str, Any]) -> Any:
    services = secretary_services(secretary["providers"], secretary["retriever"])
    rig = SecretaryRig(tmp_path, lambda: services)
    yield rig
    rig.stop()


def heard_text(call: Any) -> str:
    return " ".join(h.text or "" for h in call.state.heard_what)


def test_a_spoken_question_is_answered_from_the_documents(rig: SecretaryRig, secretary: dict[str, Any]) -> None:
    question = secretary["say"]("When are you open on Saturday?")
    call, outcome, record = rig.call(CallerScript([WaitForApp("record"), Speak(question), Wait(40)]))
    first = record.turns[0]
    assert first["outcome"] == "answer" and "saturday" in first["caller"], (
        first["caller"], first.get("streamed_stt"), first.get("speculative_stt"), first["latency_ms"])
    assert first["sources"][0]["source"].startswith("hours.md") and first["sources"][0]["score"] >= 0.3
    assert "9 am to 1 pm" in first["answer"]
    assert first["speculative_stt"] in (True, False) and first["stt"] == "stt:pocketsphinx"
    for stage in ("end_of_speech_ms", "stt_ms", "retrieval_ms", "llm_first_token_ms", "tts_first_audio_ms",
                  "playback_start_ms"):
        assert stage in first["latency_ms"], stage
    # FreeSWITCH played the answer from the TTS cache, and our VAD stopped the recording.
    commands = call.commands()
    assert any(c.startswith("api uuid_break") or "uuid_break" in c for c in commands)
    played = [c for c in commands if c.startswith("sendmsg execute playback")]
    assert len(played) >= 2
    # Then the caller stays silent: the secretary hands the call to the front desk.
    assert record.turns[1]["outcome"] == "no_input"
    assert call.state.transferred_to == "1001"


def test_an_out_of_scope_question_takes_unsure(rig: SecretaryRig, secretary: dict[str, Any]) -> None:
    question = secretary["say"]("Can you fix my car engine?")
    call, outcome, record = rig.call(CallerScript([WaitForApp("record"), Speak(question), Wait(30)]))
    turn = record.turns[0]
    assert turn["outcome"] == "unsure"
    assert "answer" not in turn or not turn["answer"]
    assert [s["node"] for s in record.path] == ["assistant", "front_desk"] and call.state.transferred_to == "1001"


def test_dtmf_during_the_answer_barges_in(rig: SecretaryRig, secretary: dict[str, Any]) -> None:
    question = secretary["say"]("How much does a crown cost?")
    script = CallerScript([WaitForApp("record"), Speak(question), WaitForApp("playback", nth=2), Wait(0.3),
                           Press("1"), Wait(30)])
    call, outcome, record = rig.call(script)
    first = record.turns[0]
    assert first["barge_in"] == "dtmf"
    assert first["sources"][0]["source"].startswith("prices.html")
    # The next turn listened right away (a second record after the cut answer).
    records = [c for c in call.commands() if c.startswith("sendmsg execute record ")]
    assert len(records) >= 2


def test_caller_speech_during_the_answer_barges_in(rig: SecretaryRig, secretary: dict[str, Any]) -> None:
    question = secretary["say"]("Where can I park my car?")
    interruption = secretary["say"]("Do you accept insurance?")
    script = CallerScript([WaitForApp("record"), Speak(question), WaitForApp("playback", nth=2), Wait(0.2),
                           Speak(interruption, wait_for_record=False), Wait(40)])
    call, outcome, record = rig.call(script)
    assert len(record.turns) >= 2, record.turns
    first, second = record.turns[0], record.turns[1]
    assert first["barge_in"] == "speech"
    assert second["caller"]                        # what they said over the answer was heard
    assert any(c.startswith("sendmsg execute record_session") for c in call.commands())


def test_retrieval_is_per_tenant_with_real_embeddings(secretary: dict[str, Any]) -> None:
    dental = secretary["retriever"].retrieve("What time do you open on Saturday?", k=10)
    bakery = secretary["bakery"].retrieve("What time do you open on Saturday?", k=10)
    assert {p.source for p in bakery.passages} == {"bread.md"}
    assert "bread.md" not in {p.source for p in dental.passages}
    assert dental.passages[0].source == "hours.md"
