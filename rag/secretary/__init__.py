"""The virtual secretary as an engine: a question in text → a grounded answer, a decision, sources.

Channel-independent: nothing here knows about audio, the Event Socket or a flow context. Each
channel is an adapter around it — the `ask_ai` node on the telephone (listen, VAD, barge-in,
speak: `ivr_flows.nodes.ask_ai`, `ivr_flows.turn_answer`), the WhatsApp worker (`whatsapp`),
and the `ivr ask` / `ivr chat` commands — so a tenant's callers and chat contacts get the same
answers from the same documents and providers.

Modules:

- `types`: the typed seams — `AnswerPlan` (everything one answer needs), `Decision` (answer,
  unsure, transfer, end_call or error, with the text, the tool calls and the LLM attempts),
  `WebhookTool`, `LLMAttempt`, `ToolCallMade`;
- `grounding`: `ground(retriever, question, …) -> Grounding`: retrieval, the `min_score`
  threshold, the passages kept, per-stage timings;
- `answer`: `answer(plan, …) -> Decision`: the LLM stream, the `NO_ANSWER` marker held back,
  sentences handed out as they complete, the tools (transfer, end_call, webhooks), the offline
  extractive fallback;
- `sentences`: `SentenceSplitter`, streamed text → whole sentences;
- `webhooks`: `HttpWebhookRunner`, the webhook tools' HTTP POSTs;
- `engine`: `Secretary(settings, services)` — ``ask(question, history)`` ties them together and
  returns a `SecretaryAnswer`.

`rag.secretary` imports `providers` (LLM types) and `rag.retriever`; channels import it, never
the reverse.
"""

from rag.secretary.answer import MAX_TOOL_ROUNDS, NO_ANSWER, answer, answer_safely, system_message, tool_specs
from rag.secretary.engine import Secretary, SecretaryAnswer, SecretaryServices, SecretarySettings
from rag.secretary.grounding import Grounding, ground
from rag.secretary.sentences import SentenceSplitter
from rag.secretary.types import AnswerPlan, Decision, LLMAttempt, ToolCallMade, WebhookTool
from rag.secretary.webhooks import HttpWebhookRunner, ToolRunner

__all__ = [
    "MAX_TOOL_ROUNDS", "NO_ANSWER", "AnswerPlan", "Decision", "Grounding", "HttpWebhookRunner", "LLMAttempt",
    "Secretary", "SecretaryAnswer", "SecretaryServices", "SecretarySettings", "SentenceSplitter", "ToolCallMade",
    "ToolRunner", "WebhookTool", "answer", "answer_safely", "ground", "system_message", "tool_specs",
]
