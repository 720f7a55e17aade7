"""One answer of the secretary: the LLM streams, sentences go out as they complete, tools are run.

`answer(plan, on_sentence=…, tools=…) -> Decision` streams ``plan.llm`` (a fallback chain: a
provider that fails or times out before its first chunk hands over to the next) and calls
``on_sentence(sentence)`` for each complete sentence the person may be given (the telephone
speaks it at once; a chat channel collects them). `answer_safely` is the same, with any
unexpected error turned into an ``error`` decision.

Grounding rules:
- the system message tells the model to answer only from the passages attached to the
  question, and to reply exactly `NO_ANSWER` when they do not hold the answer. The first words
  are held back until they cannot be the start of that marker, so an "I don't know" never goes
  out: the decision is ``unsure``;
- with no passage above the threshold (``plan.grounded`` false) the model may only call a tool
  (transfer, end, a webhook): text it writes before a webhook answered is discarded and the
  decision is ``unsure``; after a webhook answered, that answer grounds it;
- when every LLM fails (or times out) before saying anything, the offline extractive answerer
  (`providers.llm.extractive`) reads the best passage; with no passage it is ``unsure``.

Tools: ``transfer(target)`` among the plan's named targets, ``end_call()``, and webhook tools
(`rag.secretary.webhooks`; at most `MAX_TOOL_ROUNDS` rounds). Questions and answers are never
logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from providers.llm.base import ChatMessage, LLMChunk, ToolCall, ToolSpec
from rag.secretary.sentences import SentenceSplitter
from rag.secretary.types import AnswerPlan, Decision, LLMAttempt, ToolCallMade, chunk_attempts
from rag.secretary.webhooks import HttpWebhookRunner, ToolRunner

NO_ANSWER = "NO_ANSWER"
MAX_TOOL_ROUNDS = 3
COMMIT_WAIT = 60.0     # longest a webhook of an uncommitted answer waits for the question to be complete

_log = structlog.get_logger("rag.secretary")

# The medium's wording: (who writes or calls, how the answer goes out). The rules are the same.
_MEDIUM = {
    "phone": ("You answer callers on the telephone.", "the caller", "Speak naturally"),
    "chat": ("You answer people who write to you in a chat.", "the person", "Write naturally"),
}


def system_message(instructions: str, *, tools: bool, channel: str = "phone") -> str:
    """The grounding rules after the tenant's instructions; ``channel`` (``phone`` or ``chat``)
    changes only the wording of the medium, never a rule."""
    intro, who, manner = _MEDIUM.get(channel, _MEDIUM["phone"])
    rules = (
        f"{intro} Answer {who}'s question using only the documents "
        f"attached to their message. {manner}, in one to three short sentences, with no lists, "
        "markup, or document numbers. If the documents do not contain the answer, reply with exactly "
        f"{NO_ANSWER} and nothing else. Never guess and never use outside knowledge."
    )
    if tools:
        rules += (f" When {who} asks to speak to a person or a department, call the transfer tool; "
                  "when they say goodbye or have nothing more to ask, call end_call.")
    return f"{instructions.strip()}\n\n{rules}" if instructions.strip() else rules


def tool_specs(plan: AnswerPlan) -> list[ToolSpec]:
    specs = []
    if plan.transfer_targets:
        specs.append(ToolSpec("transfer", "Transfer the caller to a person or department.", {
            "type": "object",
            "properties": {"target": {"type": "string", "enum": sorted(plan.transfer_targets),
                                      "description": "where to transfer the caller"}},
            "required": ["target"]}))
    if plan.allow_end_call:
        specs.append(ToolSpec("end_call", "End the call politely when the caller is done.",
                              {"type": "object", "properties": {}}))
    for hook in plan.webhooks:
        specs.append(ToolSpec(hook.name, hook.description, {
            "type": "object", "properties": hook.parameters, "required": sorted(hook.parameters)}))
    return specs


class _Stream:
    """Consume one LLM stream: sentences out as they complete, the marker held back."""

    def __init__(self, on_sentence: Callable[[str], None], decision: Decision, speak: bool) -> None:
        self.on_sentence = on_sentence
        self.decision = decision
        self.speak = speak
        self.splitter = SentenceSplitter()
        self.text = ""
        self.said = 0
        self.calls: list[ToolCall] = []
        self.no_answer = False
        self._held: str | None = ""

    def _emit(self, sentences: list[str]) -> None:
        for sentence in sentences:
            if NO_ANSWER in sentence:
                self.no_answer = True
                return
            if self.speak:
                self.on_sentence(sentence)
                self.said += 1

    def feed(self, chunk: LLMChunk) -> None:
        if self.decision.first_token_at is None and (chunk.text or chunk.tool_call):
            self.decision.first_token_at = time.monotonic()
            self.decision.provider = chunk.provider or self.decision.provider
            self.decision.attempts = chunk_attempts(chunk) or self.decision.attempts
        if chunk.finish_reason == "no_answer":
            self.no_answer = True
        if chunk.tool_call is not None:
            self.calls.append(chunk.tool_call)
        if chunk.text and not self.no_answer:
            self.text += chunk.text
            if self._held is not None:
                self._held += chunk.text
                stripped = self._held.lstrip().upper()
                if stripped.startswith(NO_ANSWER):
                    self.no_answer = True
                    return
                if len(stripped) < len(NO_ANSWER) and NO_ANSWER.startswith(stripped):
                    return  # could still become the marker: hold it back
                text, self._held = self._held, None
                self._emit(self.splitter.feed(text))
            else:
                self._emit(self.splitter.feed(chunk.text))

    def finish(self) -> None:
        if self._held:
            stripped = self._held.strip().upper()
            if stripped and NO_ANSWER.startswith(stripped):
                self.no_answer = True
            else:
                self.splitter.feed(self._held)
            self._held = None
        if not self.no_answer:
            self._emit(self.splitter.flush())


def _consume(stream: Iterator[LLMChunk], state: _Stream) -> None:
    for chunk in stream:
        state.feed(chunk)
        if state.no_answer:
            break
    state.finish()


def _ignore(_sentence: str) -> None:
    pass


def answer_safely(plan: AnswerPlan, *, on_sentence: Callable[[str], None] = _ignore,
                  tools: ToolRunner | None = None, log: Any = None,
                  passthrough: tuple[type[BaseException], ...] = ()) -> Decision:
    """`answer`, with an unexpected error (not one of `passthrough`) as an ``error`` decision."""
    log = log or _log
    try:
        return answer(plan, on_sentence=on_sentence, tools=tools, log=log)
    except passthrough:
        raise
    except Exception as e:
        log.error("secretary.answer_failed", error=type(e).__name__, exc_info=True)
        return Decision("error", reason=f"{type(e).__name__}: {e}"[:300])


def answer(plan: AnswerPlan, *, on_sentence: Callable[[str], None] = _ignore, tools: ToolRunner | None = None,
           log: Any = None) -> Decision:
    """Answer `plan.question` (see the module docstring); sentences go to `on_sentence` as they complete."""
    from providers.errors import ProviderError

    log = log or _log
    tools = tools or HttpWebhookRunner()
    decision = Decision("answer", started_at=time.monotonic())
    specs = tool_specs(plan)
    messages: list[ChatMessage] = [ChatMessage("system", plan.system), *plan.history,
                                   ChatMessage("user", plan.question, passages=tuple(plan.passages))]
    hooks = {h.name: h for h in plan.webhooks}
    spoken_total = 0
    text_total = ""
    used_webhook = False   # a webhook's answer grounds what the model says next
    for _round in range(MAX_TOOL_ROUNDS):
        state = _Stream(on_sentence, decision, speak=plan.grounded or used_webhook)
        try:
            if plan.llm is None:
                raise LookupError("no LLM for this answer")
            _consume(iter(plan.llm.stream(messages, tools=specs or None, timeout=plan.llm_timeout)), state)
        except (ProviderError, LookupError) as e:
            log.warning("secretary.llm_failed", error=type(e).__name__, spoken=state.said + spoken_total)
            decision.attempts += chunk_attempts(e) or [LLMAttempt(error=type(e).__name__)]
            if state.said + spoken_total:
                decision.reason = "llm failed mid-answer"
                decision.text = text_total + state.text
                return decision
            return _extractive(plan, on_sentence, decision)
        spoken_total += state.said
        text_total += state.text
        if state.no_answer and not state.calls:
            return Decision("unsure", provider=decision.provider, first_token_at=decision.first_token_at,
                            started_at=decision.started_at, attempts=decision.attempts,
                            reason="the model could not answer from the documents")
        if not state.calls:
            if not plan.grounded and not used_webhook:
                return Decision("unsure", provider=decision.provider, first_token_at=decision.first_token_at,
                                reason="no document above the threshold", attempts=decision.attempts)
            decision.text = text_total.strip()
            return decision if decision.text else Decision("unsure", provider=decision.provider,
                                                             reason="empty answer", attempts=decision.attempts)
        results: list[tuple[ToolCall, str]] = []
        for call in state.calls:
            decision.tool_calls.append(ToolCallMade(call.name, dict(call.arguments)))
            if call.name == "transfer":
                target = str(call.arguments.get("target", ""))
                if target in plan.transfer_targets:
                    decision.kind, decision.target, decision.text = "transfer", target, text_total.strip()
                    return decision
                results.append((call, json.dumps({"error": f"unknown target {target!r}"})))
            elif call.name == "end_call" and plan.allow_end_call:
                decision.kind, decision.text = "end_call", text_total.strip()
                return decision
            elif call.name in hooks:
                used_webhook = True
                if plan.commit is not None and not plan.commit.wait(timeout=COMMIT_WAIT):
                    results.append((call, json.dumps({"error": "the caller had not finished"})))
                    continue
                results.append((call, tools.run(hooks[call.name], dict(call.arguments))))
            else:
                results.append((call, json.dumps({"error": f"no tool {call.name!r}"})))
        messages.append(ChatMessage("assistant", state.text, tool_calls=tuple(c for c, _ in results)))
        messages += [ChatMessage("tool", result, tool_call_id=c.id) for c, result in results]
    decision.text = text_total.strip()
    decision.reason = "tool rounds exhausted"
    return decision if decision.text else Decision("unsure", reason="tool rounds exhausted",
                                                     attempts=decision.attempts)


def _extractive(plan: AnswerPlan, on_sentence: Callable[[str], None], decision: Decision) -> Decision:
    """Every LLM failed: read the best passage (grounded questions only), or be unsure."""
    from providers.llm.extractive import ExtractiveLLM

    if not plan.grounded or not plan.passages:
        return Decision("unsure", reason="every LLM failed and no passage", attempts=decision.attempts)
    offline = ExtractiveLLM()
    state = _Stream(on_sentence, decision, speak=True)
    messages = [ChatMessage("user", plan.question, passages=tuple(plan.passages))]
    _consume(iter(offline.stream(messages)), state)
    if state.no_answer or not state.text.strip():
        return Decision("unsure", reason="every LLM failed; no passage to read", attempts=decision.attempts,
                        fallback="extractive")
    decision.kind, decision.text, decision.fallback = "answer", state.text.strip(), "extractive"
    decision.provider = offline.label
    return decision
