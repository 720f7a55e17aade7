"""The telephone's side of one answer of the virtual secretary (the engine is `rag.secretary`).

`answer_turn(ctx, plan, events) -> Decision` is the body of a turn's answer greenlet: it runs the
engine's `answer` (`rag.secretary.answer`: the LLM stream, the NO_ANSWER grounding rule, the
tools, the extractive fallback) and puts each complete sentence on `events` as
``("say", sentence)`` for `ivr_flows.speech_answer`, then ``("done", Decision)``. A hung-up call
(`CallEnded`) unwinds instead. Webhook tools may only reach the tenant's allowed URL hosts
(`ctx.allowed_url_hosts`) and use the call's HTTP session.

The engine's names are re-exported here for the voice path: `AnswerPlan`, `Decision`,
`WebhookToolSpec` (the engine's `WebhookTool`), `system_message`, `tool_specs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gevent.queue import Queue

from ivr_flows.call import CallEnded
from ivr_flows.prompt_paths import url_problem
from rag.secretary.answer import COMMIT_WAIT, MAX_TOOL_ROUNDS, NO_ANSWER, answer_safely, system_message, tool_specs
from rag.secretary.types import AnswerPlan, Decision, WebhookTool
from rag.secretary.webhooks import MAX_TOOL_RESULT, HttpWebhookRunner

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

WebhookToolSpec = WebhookTool

__all__ = ["COMMIT_WAIT", "MAX_TOOL_RESULT", "MAX_TOOL_ROUNDS", "NO_ANSWER", "AnswerPlan", "Decision",
           "WebhookToolSpec", "answer_turn", "call_webhooks", "run_webhook", "system_message", "tool_specs"]


def call_webhooks(ctx: FlowContext) -> HttpWebhookRunner:
    """The webhook tools of this call: the tenant's URL policy (hosts, and the addresses actually
    connected to), the call's HTTP session."""
    from ivr_flows.nodes.webhook import _session_for

    hosts = ctx.allowed_url_hosts
    return HttpWebhookRunner(ctx.http_session, lambda url: url_problem(url, hosts) is None,
                             session_factory=lambda: _session_for(ctx))


def run_webhook(ctx: FlowContext, hook: WebhookTool, arguments: dict[str, Any]) -> str:
    """POST the arguments; the answer (JSON text, cut to MAX_TOOL_RESULT) goes back to the model."""
    return call_webhooks(ctx).run(hook, arguments)


def answer_turn(ctx: FlowContext, plan: AnswerPlan, events: Queue) -> Decision:
    """Stream the answer onto `events`; always ends with ("done", decision) (see module docstring)."""
    decision = answer_safely(plan, on_sentence=lambda sentence: events.put(("say", sentence)),
                             tools=call_webhooks(ctx), log=ctx.log.bind(node=ctx.node_id),
                             passthrough=(CallEnded,))
    events.put(("done", decision))
    return decision
