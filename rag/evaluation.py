"""Measuring a tenant's knowledge base: an evaluation set asked through the secretary, and its scores.

An evaluation set is a YAML file (see ``examples/eval/dental.yaml``)::

    name: harbor-street-dental
    answerable:
      - {q: "What are your opening hours?", expect: ["8", "eight"], source: hours.md}
    out_of_scope:
      - "Do you do eye tests?"

`load_eval_set` validates it (file and entry named in the error). `evaluate(ask, eval_set)` puts
every question to ``ask`` (a `rag.secretary.Secretary.ask`, or a spoken call that returns the same
`SecretaryAnswer`) and scores each answer:

- **hit@1 / hit@3**: the expected ``source`` document is the best passage retrieved / among the
  first three;
- **correct**: the decision is ``answer`` and the answer holds one of the ``expect`` strings
  (compared lower-case, with punctuation and extra spaces removed);
- **refused**: an out-of-scope question was ``unsure`` (or handed to a person);
- **unsure precision / recall**: of the questions the secretary was unsure about, how many were
  out of scope; of the out-of-scope questions, how many it was unsure about.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.errors import RagError

_PUNCT = re.compile(r"[^\w\s]")


class EvalSetError(RagError):
    """The evaluation set file is not valid."""


class Answerable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    q: str = Field(min_length=1)
    expect: list[str] = Field(min_length=1)
    source: str | None = None


class EvalSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "eval"
    answerable: list[Answerable] = Field(default_factory=list)
    out_of_scope: list[str] = Field(default_factory=list)


def load_eval_set(path: Path) -> EvalSet:
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as e:
        raise EvalSetError(f"{path}: {e}") from e
    try:
        return EvalSet.model_validate(data or {})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EvalSetError(f"{path}: {where}: {first['msg']}") from e


def normalized(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


@dataclass(slots=True)
class QuestionResult:
    question: str
    kind: str                               # answerable | out_of_scope
    decision: str
    answer: str
    correct: bool
    sources: list[str] = field(default_factory=list)      # retrieved documents, best first
    best_score: float | None = None
    hit1: bool | None = None
    hit3: bool | None = None
    seconds: float = 0.0
    heard: str | None = None                # what the STT heard (spoken runs)

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "kind": self.kind, "decision": self.decision, "answer": self.answer,
                "correct": self.correct, "sources": self.sources, "best_score": self.best_score,
                "hit1": self.hit1, "hit3": self.hit3, "seconds": round(self.seconds, 3), "heard": self.heard}


@dataclass(slots=True)
class EvalReport:
    name: str
    results: list[QuestionResult]

    def _of(self, kind: str) -> list[QuestionResult]:
        return [r for r in self.results if r.kind == kind]

    @staticmethod
    def _rate(values: Iterable[bool]) -> float | None:
        items = list(values)
        return round(sum(items) / len(items), 3) if items else None

    @property
    def metrics(self) -> dict[str, float | int | None]:
        answerable, oos = self._of("answerable"), self._of("out_of_scope")
        unsure = [r for r in self.results if r.decision != "answer"]
        return {
            "answerable": len(answerable), "out_of_scope": len(oos),
            "hit_at_1": self._rate(r.hit1 for r in answerable if r.hit1 is not None),
            "hit_at_3": self._rate(r.hit3 for r in answerable if r.hit3 is not None),
            "accuracy": self._rate(r.correct for r in answerable),
            "refused": self._rate(r.correct for r in oos),
            "unsure_precision": self._rate(r.kind == "out_of_scope" for r in unsure),
            "unsure_recall": self._rate(r.decision != "answer" for r in oos),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metrics": self.metrics, "results": [r.as_dict() for r in self.results]}


def _documents(answer: Any) -> list[str]:
    return [p.source for p in answer.grounding.retrieved]


def score_answerable(item: Answerable, answer: Any, seconds: float, heard: str | None = None) -> QuestionResult:
    text = answer.text
    said = normalized(text)
    correct = answer.decision.kind == "answer" and any(normalized(e) in said for e in item.expect)
    docs = _documents(answer)
    return QuestionResult(item.q, "answerable", answer.decision.kind, text, correct, docs,
                          answer.grounding.best_score,
                          hit1=(docs[:1] == [item.source]) if item.source else None,
                          hit3=(item.source in docs[:3]) if item.source else None, seconds=seconds, heard=heard)


def score_out_of_scope(question: str, answer: Any, seconds: float, heard: str | None = None) -> QuestionResult:
    return QuestionResult(question, "out_of_scope", answer.decision.kind, answer.text,
                          answer.decision.kind != "answer", _documents(answer), answer.grounding.best_score,
                          seconds=seconds, heard=heard)


Ask = Callable[[str], Any]          # question -> SecretaryAnswer (heard text in .question for spoken runs)


def evaluate(ask: Ask, eval_set: EvalSet, *, progress: Callable[[QuestionResult], None] | None = None,
             heard: Callable[[Any], str | None] | None = None) -> EvalReport:
    """Every question of the set through ``ask``, scored (see the module docstring)."""
    results: list[QuestionResult] = []
    for item in eval_set.answerable:
        started = time.monotonic()
        answer = ask(item.q)
        results.append(score_answerable(item, answer, time.monotonic() - started, heard(answer) if heard else None))
        if progress:
            progress(results[-1])
    for question in eval_set.out_of_scope:
        started = time.monotonic()
        answer = ask(question)
        results.append(score_out_of_scope(question, answer, time.monotonic() - started,
                                          heard(answer) if heard else None))
        if progress:
            progress(results[-1])
    return EvalReport(eval_set.name, results)
