"""The secretary engine on its own (no audio, no call): grounding, decisions, sources, streamed sentences,
history, tools; and ``ivr ask`` / ``ivr chat`` running it with a tenant's own providers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from providers_stub_server import StubServer
from test_rag_node import openai, openai_text, openai_tool

from providers.llm.base import ChatMessage
from providers.llm.extractive import ExtractiveLLM
from rag.retriever import Retriever
from rag.secretary import Secretary, SecretaryServices, SecretarySettings, system_message


def test_a_grounded_question_is_answered_with_its_sources(knowledge: Retriever) -> None:
    secretary = Secretary(SecretarySettings(), SecretaryServices(llm=ExtractiveLLM(), retriever=knowledge))
    result = secretary.ask("what are your saturday opening hours")
    assert result.decision.kind == "answer" and "9 am to 1 pm" in result.text
    assert result.grounding.grounded and result.grounding.retrieved[0].source == "hours.md"
    assert result.grounding.best_score >= 0.3 and result.sentences and " ".join(result.sentences) == result.text
    assert "best passage" in result.why and ">= min_score 0.30" in result.why
    data = result.as_dict()
    assert data["decision"] == "answer" and data["passages"][0]["given_to_model"] is True


def test_below_the_threshold_the_secretary_is_unsure_and_says_why(knowledge: Retriever) -> None:
    secretary = Secretary(SecretarySettings(min_score=0.99), SecretaryServices(llm=ExtractiveLLM(),
                                                                               retriever=knowledge))
    result = secretary.ask("what are your saturday opening hours")
    assert result.decision.kind == "unsure" and result.text == "" and result.sentences == []
    assert "< min_score 0.99" in result.why and result.grounding.retrieved     # still shows what it found
    no_docs = Secretary(SecretarySettings(), SecretaryServices(llm=ExtractiveLLM(), retriever=None)).ask("hours?")
    assert no_docs.decision.kind == "unsure" and no_docs.grounding.skipped == "no retriever"


def test_the_model_streams_sentences_sees_history_and_may_transfer(knowledge: Retriever, stub: StubServer) -> None:
    stub.script("POST", "/v1/chat/completions",
                openai_text("We are open on Saturdays ", "from 9 am to 1 pm. ", "See you soon!"),
                openai_tool("transfer", {"target": "front_desk"}))
    llm = openai(stub)
    settings = SecretarySettings(transfer_targets={"front_desk": "1001"}, channel="chat")
    secretary = Secretary(settings, SecretaryServices(llm=llm, retriever=knowledge))
    heard: list[str] = []
    first = secretary.ask("what are your saturday opening hours", on_sentence=heard.append)
    assert heard == ["We are open on Saturdays from 9 am to 1 pm.", "See you soon!"] == first.sentences
    history = [ChatMessage("user", first.question), ChatMessage("assistant", first.text)]
    second = secretary.ask("can I talk to someone", history)
    assert second.decision.kind == "transfer" and second.decision.target == "front_desk"
    request = stub.calls("/v1/chat/completions")[1].json()
    assert request["messages"][0]["content"].startswith("You answer people who write to you in a chat.")
    assert [m["content"] for m in request["messages"][1:3]] == [first.question, first.text]
    assert system_message("", tools=False).startswith("You answer callers on the telephone.")


def _tenant_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm: StubServer | None = None) -> str:
    from cryptography.fernet import Fernet
    from rag_harness import KNOWLEDGE, make_database

    from rag.ingest import Ingester
    from rag.services import tenant_embeddings
    from rag.settings import RagSettings, open_index

    monkeypatch.setenv("IVR_RAG_DIR", str(tmp_path / "rag"))
    monkeypatch.setenv("IVR_SECRET_KEYS", Fernet.generate_key().decode())
    engine, stores = make_database(tmp_path, "dental.example")
    store = stores["dental.example"]
    settings = RagSettings.from_env()
    index = open_index(settings, store.tenant_id, engine)
    Ingester(store, index, tenant_embeddings(store), settings).ingest([KNOWLEDGE])
    store.add_version("main", "flow: main\nstart: a\nnodes:\n  a: {type: ask_ai, min_score: 0.9, "
                      "next: {done: b, unsure: b}}\n  b: {type: hangup}\n", author="test")
    if llm is not None:
        store.set_provider("llm", "openai_compatible", settings={"base_url": f"{llm.url}/v1", "model": "m",
                                                                 "retries": 0})
    engine.dispose()
    return f"sqlite:///{tmp_path / 'ivr.db'}"


@pytest.mark.models
def test_ivr_ask_answers_with_the_tenants_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scripts.cli import cli

    url = _tenant_database(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["ask", "dental.example", "When are you open on Saturday?", "--url", url])
    assert result.exit_code == 0, result.output
    assert "9 am to 1 pm" in result.output and "decision: answer" in result.output and "hours.md" in result.output
    as_json = CliRunner().invoke(cli, ["ask", "dental.example", "When are you open on Saturday?", "--url", url,
                                       "--json"])
    data = json.loads(as_json.output.strip().splitlines()[-1])
    assert data["decision"] == "answer" and data["passages"][0]["source"].startswith("hours.md")
    # The settings of the flow's ask_ai node (min_score 0.9): the same question is now `unsure`.
    strict = CliRunner().invoke(cli, ["ask", "dental.example", "When are you open on Saturday?", "--url", url,
                                      "--flow", "main:a", "--json"])
    assert json.loads(strict.output.strip().splitlines()[-1])["decision"] == "unsure"
    missing = CliRunner().invoke(cli, ["ask", "nobody.example", "hi", "--url", url])
    assert missing.exit_code != 0 and "unknown tenant" in missing.output


@pytest.mark.models
def test_ivr_chat_keeps_the_conversation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: StubServer) -> None:
    from scripts.cli import cli

    stub.script("POST", "/v1/chat/completions", openai_text("A cleaning costs 90 dollars."),
                openai_text("We are open on Saturdays from 9 am to 1 pm."))
    url = _tenant_database(tmp_path, monkeypatch, llm=stub)
    result = CliRunner().invoke(cli, ["chat", "dental.example", "--url", url, "--json"],
                                input="How much is a cleaning?\nWhen are you open on Saturday?\n\n")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [a["answer"] for a in answers] == ["A cleaning costs 90 dollars.",
                                              "We are open on Saturdays from 9 am to 1 pm."]
    second = [m["content"] for m in stub.calls("/v1/chat/completions")[1].json()["messages"]]
    assert second[1:3] == ["How much is a cleaning?", "A cleaning costs 90 dollars."]
