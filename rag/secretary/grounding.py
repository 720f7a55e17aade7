"""Grounding a question in the tenant's documents: retrieval and the `min_score` threshold.

`ground(retriever, question, top_k=…, min_score=…) -> Grounding`. The question is *grounded*
when the best passage reaches `min_score`; only the passages at or above it go to the model
(none when it is not grounded: the model may then only call a tool, see `rag.secretary.answer`).
A retrieval that fails (embedding service down, an index built by another model) is logged with
its error class and leaves the question ungrounded: the decision will be ``unsure``, never a guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from providers.llm.base import Passage

if TYPE_CHECKING:
    from rag.retriever import RetrievedPassage, Retriever

_log = structlog.get_logger("rag.secretary")


@dataclass(frozen=True, slots=True)
class Grounding:
    question: str
    retrieved: tuple[RetrievedPassage, ...] = ()   # every passage retrieved, best first, with scores
    passages: tuple[Passage, ...] = ()             # what the model is given (those >= min_score)
    grounded: bool = False
    min_score: float = 0.0
    retrieval_ms: float | None = None              # None: no retrieval was attempted
    embed_ms: float | None = None
    search_ms: float | None = None
    error: str | None = None                       # the retrieval's error class
    skipped: str | None = None                     # why no retrieval: "knowledge off", "no retriever"

    @property
    def best_score(self) -> float | None:
        return self.retrieved[0].score if self.retrieved else None


def ground(retriever: Retriever | None, question: str, *, top_k: int = 4, min_score: float = 0.3,
           knowledge: bool = True, log: Any = None,
           passthrough: tuple[type[BaseException], ...] = ()) -> Grounding:
    """Retrieve passages for `question` and judge them against `min_score` (see the module docstring)."""
    log = log or _log
    if not knowledge:
        return Grounding(question, min_score=min_score, skipped="knowledge off")
    if retriever is None:
        log.warning("secretary.no_retriever")
        return Grounding(question, min_score=min_score, skipped="no retriever")
    started = time.monotonic()
    try:
        retrieval = retriever.retrieve(question, k=top_k)
    except passthrough:
        raise
    except Exception as e:
        log.warning("secretary.retrieval_failed", error=type(e).__name__)
        return Grounding(question, min_score=min_score, retrieval_ms=_ms(started), error=type(e).__name__)
    retrieved = tuple(retrieval.passages)
    grounded = bool(retrieved) and retrieved[0].score >= min_score
    kept = tuple(p.as_passage() for p in retrieved if p.score >= min_score) if grounded else ()
    return Grounding(question, retrieved, kept, grounded, min_score, _ms(started), retrieval.embed_ms,
                     retrieval.search_ms)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
