"""One answer of the virtual secretary: the LLM streams, sentences go out, tools are run.

`answer_turn(ctx, plan, events) -> Decision` is the body of the turn's answer greenlet. It
streams ``extensions["llm"]`` (a fallback chain: a provider that fails or times out before its
first chunk hands over to the next), puts each complete sentence on `events` as
``("say", sentence)`` for `ivr_flows.speech_answer`, and ends with ``("done", Decision)``.

Grounding rules:
- the system message tells the model to answer only from the passages attached to the caller's
  message, and to reply exactly `NO_ANSWER` when they do not hold the answer. The first words are
  held back until they cannot be the start of that marker, so an "I don't know" is never spoken:
  the decision is ``unsure``;
- with no passage above the node's threshold (``plan.grounded`` false) the model may only call a
  tool (transfer, end the call, a webhook): text it writes before a webhook answered is
  discarded and the decision is ``unsure``; after a webhook answered, that answer grounds it;
- when every LLM fails (or times out) before saying anything, the offline extractive answerer
  (`providers.llm.extractive`) reads the best passage; with no passage it is ``unsure``.

Tools (`ToolSpec`s declared by the node): ``transfer(target)`` among the node's named targets,
``end_call()``, and webhook tools (an HTTP POST of the arguments as JSON, answer fed back to the
model, at most `MAX_TOOL_ROUNDS` rounds). Transcripts and answers are never logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from gevent.event import Event
from gevent.queue import Queue

from ivr_flows.call import CallEnded
from ivr_flows.prompt_paths import url_problem
from ivr_flows.speech_answer import SentenceSplitter

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

NO_ANSWER = "NO_ANSWER"
MAX_TOOL_ROUNDS = 3
MAX_TOOL_RESULT = 2000
COMMIT_WAIT = 60.0     # longest a preemptive answer's webhook waits for the caller to finish


@dataclass(frozen=True, slots=True)
class WebhookToolSpec:
    """A webhook tool as the node declares it."""

    name: str
    description: str
    url: str
    parameters: dict[str, Any]
    timeout: float = 5.0


@dataclass(slots=True)
class AnswerPlan:
    """Everything one answer needs (built by the node)."""

    llm: Any
    system: str
    history: list[Any]
    question: str
    passages: list[Any]                 # providers.llm.base.Passage
    grounded: bool                      # some passage reached the node's threshold
    transfer_targets: dict[str, str]
    allow_end_call: bool
    webhooks: list[WebhookToolSpec]
    llm_timeout: float
    # Set when the caller has surely finished speaking. A preemptive answer (started at a pause,
    # see `ivr_flows.preemptive_answer`) runs no webhook before it: a tool with side effects
    # must not fire for a question the caller had not finished asking.
    commit: Event | None = None


@dataclass(slots=True)
class Decision:
    kind: str                            # answer | unsure | transfer | end_call | error
    text: str = ""
    target: str | None = None            # the transfer target's name
    provider: str = ""
    started_at: float | None = None      # when the first LLM request went out
    first_token_at: float | None = None
    fallback: str | None = None          # "extractive" when every LLM failed
    reason: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def system_message(instructions: str, *, tools: bool) -> str:
    rules = (
        "You answer callers on the telephone. Answer the caller's question using only the documents "
        "attached to their message. Speak naturally, in one to three short sentences, with no lists, "
        "markup, or document numbers. If the documents do not contain the answer, reply with exactly "
        f"{NO_ANSWER} and nothing else. Never guess and never use outside knowledge."
    )
    if tools:
        rules += (" When the caller asks to speak to a person or a department, call the transfer tool; "
                  "when they say goodbye or have nothing more to ask, call end_call.")
    return f"{instructions.strip()}\n\n{rules}" if instructions.strip() else rules


def tool_specs(plan: AnswerPlan) -> list[Any]:
    from providers.llm.base import ToolSpec

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


def run_webhook(ctx: FlowContext, hook: WebhookToolSpec, arguments: dict[str, Any]) -> str:
    """POST the arguments; the answer (JSON text, cut to MAX_TOOL_RESULT) goes back to the model."""
    problem = url_problem(hook.url, ctx.allowed_url_hosts)
    if problem:
        return json.dumps({"error": "this tool is not allowed"})
    from ivr_flows.nodes.webhook import _session_for

    session = ctx.http_session or _session_for(ctx)
    try:
        response = session.post(hook.url, json=arguments, timeout=hook.timeout, allow_redirects=False)
        if response.status_code >= 300:
            return json.dumps({"error": f"HTTP {response.status_code}"})
        return response.text[:MAX_TOOL_RESULT]
    except requests.RequestException as e:
        return json.dumps({"error": type(e).__name__})
    finally:
        if ctx.http_session is None:
            session.close()


def _attempts(chunk: Any) -> list[dict[str, Any]]:
    return [{"provider": a.provider, "ok": a.ok, "latency_ms": a.latency_ms, "error": a.error}
            for a in getattr(chunk, "attempts", ()) or ()]


class _Stream:
    """Consume one LLM stream: sentences out as they complete, marker held back."""

    def __init__(self, events: Queue, decision: Decision, speak: bool) -> None:
        self.events = events
        self.decision = decision
        self.speak = speak
        self.splitter = SentenceSplitter()
        self.text = ""
        self.said = 0
        self.calls: list[Any] = []
        self.no_answer = False
        self._held = ""

    def _emit(self, sentences: list[str]) -> None:
        for sentence in sentences:
            if NO_ANSWER in sentence:
                self.no_answer = True
                return
            if self.speak:
                self.events.put(("say", sentence))
                self.said += 1

    def feed(self, chunk: Any) -> None:
        if self.decision.first_token_at is None and (chunk.text or chunk.tool_call):
            self.decision.first_token_at = time.monotonic()
            self.decision.provider = chunk.provider or self.decision.provider
            self.decision.attempts = _attempts(chunk) or self.decision.attempts
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
                text, self._held = self._held, None  # type: ignore[assignment]
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
            self._held = None  # type: ignore[assignment]
        if not self.no_answer:
            self._emit(self.splitter.flush())


def _consume(stream: Iterator[Any], state: _Stream) -> None:
    for chunk in stream:
        state.feed(chunk)
        if state.no_answer:
            break
    state.finish()


def answer_turn(ctx: FlowContext, plan: AnswerPlan, events: Queue) -> Decision:
    """Stream the answer onto `events`; always ends with ("done", decision) (see module docstring)."""
    decision = Decision("error")
    try:
        decision = _answer(ctx, plan, events)
    except CallEnded:
        raise
    except Exception as e:
        ctx.log.error("flow.ask_ai_answer_failed", node=ctx.node_id, error=type(e).__name__, exc_info=True)
        decision = Decision("error", reason=f"{type(e).__name__}: {e}"[:300])
    events.put(("done", decision))
    return decision


def _answer(ctx: FlowContext, plan: AnswerPlan, events: Queue) -> Decision:
    from providers.errors import ProviderError
    from providers.llm.base import ChatMessage

    decision = Decision("answer", started_at=time.monotonic())
    tools = tool_specs(plan)
    messages: list[Any] = [ChatMessage("system", plan.system), *plan.history,
                           ChatMessage("user", plan.question, passages=tuple(plan.passages))]
    hooks = {h.name: h for h in plan.webhooks}
    spoken_total = 0
    text_total = ""
    used_webhook = False   # a webhook's answer grounds what the model says next
    for _round in range(MAX_TOOL_ROUNDS):
        state = _Stream(events, decision, speak=plan.grounded or used_webhook)
        try:
            if plan.llm is None:
                raise LookupError("no LLM for this call")
            _consume(iter(plan.llm.stream(messages, tools=tools or None, timeout=plan.llm_timeout)), state)
        except (ProviderError, LookupError) as e:
            ctx.log.warning("flow.ask_ai_llm_failed", node=ctx.node_id, error=type(e).__name__,
                            spoken=state.said + spoken_total)
            decision.attempts += [{"provider": a.provider, "ok": a.ok, "latency_ms": a.latency_ms, "error": a.error}
                                  for a in getattr(e, "attempts", ())] or [{"error": type(e).__name__}]
            if state.said + spoken_total:
                decision.reason = "llm failed mid-answer"
                decision.text = text_total + state.text
                return decision
            return _extractive(plan, events, decision)
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
        results = []
        for call in state.calls:
            decision.tool_calls.append({"name": call.name, "arguments": call.arguments})
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
                results.append((call, run_webhook(ctx, hooks[call.name], dict(call.arguments))))
            else:
                results.append((call, json.dumps({"error": f"no tool {call.name!r}"})))
        messages.append(ChatMessage("assistant", state.text, tool_calls=tuple(c for c, _ in results)))
        messages += [ChatMessage("tool", result, tool_call_id=c.id) for c, result in results]
    decision.text = text_total.strip()
    decision.reason = "tool rounds exhausted"
    return decision if decision.text else Decision("unsure", reason="tool rounds exhausted",
                                                     attempts=decision.attempts)


def _extractive(plan: AnswerPlan, events: Queue, decision: Decision) -> Decision:
    """Every LLM failed: read the best passage (grounded questions only), or be unsure."""
    from providers.llm.base import ChatMessage
    from providers.llm.extractive import ExtractiveLLM

    if not plan.grounded or not plan.passages:
        return Decision("unsure", reason="every LLM failed and no passage", attempts=decision.attempts)
    offline = ExtractiveLLM()
    state = _Stream(events, decision, speak=True)
    messages: Sequence[Any] = [ChatMessage("user", plan.question, passages=tuple(plan.passages))]
    _consume(iter(offline.stream(messages)), state)
    if state.no_answer or not state.text.strip():
        return Decision("unsure", reason="every LLM failed; no passage to read", attempts=decision.attempts,
                        fallback="extractive")
    decision.kind, decision.text, decision.fallback = "answer", state.text.strip(), "extractive"
    decision.provider = offline.label
    return decision
