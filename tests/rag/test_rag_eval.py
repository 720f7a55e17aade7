"""``ivr eval``: a tenant's knowledge base measured with an evaluation set (the secretary's own
engine, the tenant's providers), per question and in total, with goals an exit code can enforce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_rag_secretary import _tenant_database

from rag.evaluation import EvalSetError, load_eval_set, normalized
from scripts.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SMALL = """
name: small
answerable:
  - {q: "When are you open on Saturday?", expect: ["9 am"], source: hours.md}
  - {q: "Where can I park?", expect: ["behind the building"], source: location.txt}
  - {q: "How much is a cleaning?", expect: ["a thousand dollars"], source: prices.html}
out_of_scope:
  - "What is the capital of France?"
"""


def test_the_shipped_evaluation_set_is_valid_and_large_enough() -> None:
    eval_set = load_eval_set(ROOT / "examples" / "eval" / "dental.yaml")
    assert len(eval_set.answerable) >= 40 and len(eval_set.out_of_scope) >= 15
    documents = {p.name for p in (ROOT / "examples" / "knowledge").iterdir()}
    assert {a.source for a in eval_set.answerable} <= documents


def test_a_bad_evaluation_set_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("answerable:\n  - {q: 'hi', expect: []}\n")
    with pytest.raises(EvalSetError, match=r"bad.yaml: answerable.0.expect"):
        load_eval_set(path)
    assert normalized("From 9 AM, to  1 p.m.!") == "from 9 am to 1 p m"


@pytest.mark.models
def test_ivr_eval_scores_each_question_and_enforces_goals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _tenant_database(tmp_path, monkeypatch)
    small = tmp_path / "small.yaml"
    small.write_text(SMALL)
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "dental.example", str(small), "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    by_q = {r["question"]: r for r in report["results"]}
    assert by_q["When are you open on Saturday?"]["correct"] and by_q["When are you open on Saturday?"]["hit1"]
    assert not by_q["How much is a cleaning?"]["correct"]              # the expectation is wrong on purpose
    assert by_q["What is the capital of France?"]["decision"] == "unsure"
    metrics = report["metrics"]
    assert (metrics["answerable"], metrics["out_of_scope"]) == (3, 1)
    assert metrics["refused"] == 1.0 and metrics["accuracy"] == pytest.approx(2 / 3, abs=0.001)
    table = runner.invoke(cli, ["eval", "dental.example", str(small), "--url", url, "--min-accuracy", "0.9"])
    assert table.exit_code == 1 and "goal missed: accuracy" in table.output
    assert "hit@1" in table.output and "ok answer" in table.output
