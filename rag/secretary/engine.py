"""`Secretary`: a tenant's virtual secretary on any channel — question + history → `SecretaryAnswer`.

```python
secretary = Secretary(SecretarySettings(instructions="You are the clinic's receptionist."),
                      SecretaryServices(llm=providers.llm, retriever=retriever))
result = secretary.ask("when are you open on saturday", history)
result.decision.kind      # answer | unsure | transfer | end_call | error
result.text, result.grounding.retrieved, result.why
```

`ask` grounds the question (`rag.secretary.grounding`), plans the answer (the system message for
the channel, the tools, the passages) and runs it (`rag.secretary.answer`), handing each sentence
to ``on_sentence`` as it completes. A channel that must start before the question is complete
(the telephone's preemptive answers) calls `ground` and `plan` itself and runs the plan with its
own commit flag. Settings mirror the `ask_ai` node's, so a tenant's calls and chats can share
them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import structlog

from providers.llm.base import ChatMessage
from rag.secretary.answer import answer_safely, system_message
from rag.secretary.grounding import Grounding, ground
from rag.secretary.types import AnswerPlan, Decision, StreamingLLM, WaitableFlag, WebhookTool
from rag.secretary.webhooks import HttpWebhookRunner, ToolRunner

if TYPE_CHECKING:
    from rag.retriever import Retriever

_log = structlog.get_logger("rag.secretary")


@dataclass(frozen=True, slots=True)
class SecretarySettings:
    """How the secretary answers (the `ask_ai` node's settings, channel-neutral)."""

    instructions: str = ""
    knowledge: bool = True
    top_k: int = 4
    min_score: float = 0.3
    transfer_targets: Mapping[str, str] = field(default_factory=dict)   # name → where (a channel's meaning)
    allow_end_call: bool = True
    webhooks: tuple[WebhookTool, ...] = ()
    llm_timeout: float = 8.0
    channel: str = "phone"                 # the system message's wording: "phone" or "chat"

    @property
    def has_tools(self) -> bool:
        return bool(self.transfer_targets or self.allow_end_call or self.webhooks)

    def overridden(self, *, instructions: str | None = None, min_score: float | None = None,
                   top_k: int | None = None, channel: str | None = None) -> SecretarySettings:
        """These settings with the values that are given replaced."""
        changes: dict[str, Any] = {k: v for k, v in (("instructions", instructions), ("min_score", min_score),
                                                     ("top_k", top_k), ("channel", channel)) if v is not None}
        return replace(self, **changes)


@dataclass(slots=True)
class SecretaryServices:
    """The tenant's services the secretary answers with."""

    llm: StreamingLLM | None
    retriever: Retriever | None
    tools: ToolRunner = field(default_factory=HttpWebhookRunner)


@dataclass(slots=True)
class SecretaryAnswer:
    """One answered question."""

    question: str
    grounding: Grounding
    decision: Decision
    sentences: list[str]                   # as handed out while the answer was written
    total_ms: float

    @property
    def text(self) -> str:
        return self.decision.text if self.decision.kind != "unsure" else ""

    @property
    def why(self) -> str:
        """Why this decision, in a sentence (for operators; no question text)."""
        g, d = self.grounding, self.decision
        if g.skipped:
            basis = f"no retrieval ({g.skipped})"
        elif g.error:
            basis = f"retrieval failed ({g.error})"
        elif not g.retrieved:
            basis = "no passage retrieved (is anything ingested?)"
        else:
            relation = ">=" if g.grounded else "<"
            basis = f"best passage {g.best_score:.3f} {relation} min_score {g.min_score:.2f}"
            if g.grounded:
                basis += f", {len(g.passages)} passage(s) given to the model"
        if d.kind == "answer":
            how = f"answered by {d.provider or 'the model'}" + (" (extractive fallback)" if d.fallback else "")
        elif d.kind == "transfer":
            how = f"the model asked to transfer to {d.target}"
        elif d.kind == "end_call":
            how = "the model ended the conversation"
        else:
            how = d.reason or d.kind
        return f"{basis}; {how}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON view (for ``ivr ask --json``)."""
        d = self.decision
        return {
            "question": self.question, "decision": d.kind, "answer": self.text, "target": d.target,
            "provider": d.provider, "fallback": d.fallback, "reason": d.reason, "why": self.why,
            "grounded": self.grounding.grounded, "min_score": self.grounding.min_score,
            "passages": [{"source": p.citation, "score": round(p.score, 4), "text": p.text,
                          "given_to_model": p.score >= self.grounding.min_score and self.grounding.grounded}
                         for p in self.grounding.retrieved],
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in d.tool_calls],
            "llm_attempts": [a.as_dict() for a in d.attempts],
            "latency_ms": {"retrieval": self.grounding.retrieval_ms, "total": self.total_ms},
            "sentences": list(self.sentences),
        }


class Secretary:
    """A tenant's secretary: its settings and services (see the module docstring)."""

    def __init__(self, settings: SecretarySettings, services: SecretaryServices, *, log: Any = None,
                 passthrough: tuple[type[BaseException], ...] = ()) -> None:
        self.settings = settings
        self.services = services
        self.log = log or _log
        self.passthrough = passthrough   # exceptions that unwind the channel (a hung-up call) instead

    def ground(self, question: str) -> Grounding:
        s = self.settings
        return ground(self.services.retriever, question, top_k=s.top_k, min_score=s.min_score,
                      knowledge=s.knowledge, log=self.log, passthrough=self.passthrough)

    def plan(self, question: str, history: Sequence[ChatMessage], grounding: Grounding, *,
             commit: WaitableFlag | None = None) -> AnswerPlan:
        s = self.settings
        return AnswerPlan(
            llm=self.services.llm, system=system_message(s.instructions, tools=s.has_tools, channel=s.channel),
            history=list(history), question=question, passages=list(grounding.passages),
            grounded=grounding.grounded, transfer_targets=dict(s.transfer_targets), allow_end_call=s.allow_end_call,
            webhooks=list(s.webhooks), llm_timeout=s.llm_timeout, commit=commit)

    def run(self, plan: AnswerPlan, on_sentence: Callable[[str], None] | None = None) -> Decision:
        return answer_safely(plan, on_sentence=on_sentence or (lambda _s: None), tools=self.services.tools,
                             log=self.log, passthrough=self.passthrough)

    def ask(self, question: str, history: Sequence[ChatMessage] = (), *,
            on_sentence: Callable[[str], None] | None = None) -> SecretaryAnswer:
        """Answer one question in the conversation `history` (earlier user/assistant messages)."""
        started = time.monotonic()
        question = question.strip()
        grounding = self.ground(question)
        sentences: list[str] = []

        def keep(sentence: str) -> None:
            sentences.append(sentence)
            if on_sentence is not None:
                on_sentence(sentence)

        decision = self.run(self.plan(question, history, grounding), keep)
        return SecretaryAnswer(question, grounding, decision, sentences,
                               round((time.monotonic() - started) * 1000, 1))
