"""`ask_ai`: the virtual secretary. The caller asks in their own words; the answer comes from the
tenant's documents, or the call takes `unsure` and goes to a person.

```yaml
assistant:
  type: ask_ai
  prompt: "Hello, this is Harbor Street Dental. How can I help you?"   # first turn only
  instructions: "You are the clinic's receptionist. Be brief and friendly."
  knowledge: true              # retrieve passages from the tenant's documents
  top_k: 4
  min_score: 0.3               # best passage below this: unsure (no guessing)
  max_turns: 6                 # questions answered before `done`
  listen: {max_seconds: 15, end_silence: 800ms, no_input: 6s, max_no_input: 2}
  max_silence: 3s              # longest dead air while the answer is prepared: then `filler`
  filler: "One moment, please."
  llm_timeout: 8s              # per provider and chunk; then the next provider, then extractive
  follow_up: "Is there anything else?"   # after an answer (optional)
  no_input_message: "Sorry, I didn't hear you."     # (these two have defaults)
  unsure_message: "Let me put you through to someone who can help."
  goodbye: "Thank you for calling. Goodbye."
  transfer_to: {front_desk: "1001", billing: "1002"}   # the `transfer` tool's targets
  end_call: true               # the model may end the call (`done`)
  webhooks:                    # tools that call the tenant's HTTP APIs
    - {name: appointment_lookup, description: "Find the caller's next appointment",
       url: "https://crm.example.com/next", parameters: {phone: {type: string}}}
  transfer_var: transfer_target  # the chosen target's number goes here
  preemptive: true             # prepare the answer during the end-of-speech silence (see below)
  next: {transfer: front_desk_node, unsure: operator, done: goodbye}
```

Outcomes: `done` (the caller is finished, the model ended the call, or `max_turns` answers were
given), `unsure` (nothing relevant in the documents, the model could not answer, the caller kept
silent `max_no_input` times, or every LLM failed with no passage to read), `transfer` (the model
called `transfer`; the target's number is in `vars.<transfer_var>`; with no edge the node
transfers the call itself and the flow ends), `error`.

A turn: (first turn: the prompt) → listen until our VAD hears the end of speech (`listen` in
`ivr_flows.speech_listen`; speculative STT makes the transcript ready at once) → retrieve → LLM
stream → sentences synthesized and played as they come (`ivr_flows.speech_answer`; fillers keep
dead air under `max_silence`; DTMF or caller speech cuts the answer and starts the next turn).
With `preemptive` (the default) the retrieval, the LLM and the first sentences' synthesis start
at the caller's pause, on the speculative transcript, while our VAD still waits out
`end_silence`; nothing plays and no webhook runs until the end of speech is confirmed with that
transcript, and the preparation is dropped if the caller speaks again
(`ivr_flows.preemptive_answer`).

The answer itself is the secretary engine's (`rag.secretary`: grounding, the LLM stream, tools,
fallback), with this node's settings (`secretary_settings`); this node is its voice adapter.
Services read from ``ctx.extensions`` (see `rag.services.secretary_services`): ``llm`` (an
`LLMProvider`), ``retriever`` (`rag.retriever.Retriever`), ``stt`` (an `STTProvider`; else
``ctx.recognizer``), ``tts`` and ``tts_cache`` (else ``ctx.synthesizer``, else FreeSWITCH
``speak``). Each turn is appended to ``ctx.extensions["turns"]`` (the controller stores it in the
call record): the transcript, the sources and scores, the answer, the outcome, and the latency
of each stage (end of speech, STT, retrieval, LLM first token, TTS first audio, playback start).
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gevent
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr_flows.call import CallEnded
from ivr_flows.durations import Duration
from ivr_flows.nodes.base import LoadEnv, Node, NodeProblem, Prompt, VarName
from ivr_flows.preemptive_answer import PreparedAnswer
from ivr_flows.prompt_paths import url_problem
from ivr_flows.prompts import DTMF_KEYS, play_prompt
from ivr_flows.speech_answer import Spoken, play, render, speak_answer
from ivr_flows.speech_listen import BargeInMonitor, Heard, background_recorder, listen
from ivr_flows.turn_answer import AnswerPlan, Decision, call_webhooks
from rag.secretary import Grounding, Secretary, SecretaryServices, SecretarySettings
from rag.secretary import WebhookTool as EngineWebhookTool

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext
    from ivr_flows.flow import Flow

_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TARGET = re.compile(r"^[0-9A-Za-z*#+_.@-]{1,64}$")
_CLOSING = re.compile(r"^(?:(?:no|nope|nothing|that'?s (?:all|it)|thanks?|thank you|bye|goodbye|good bye|"
                      r"no thanks?|i'?m (?:good|done|fine)|that is all|ok|okay|great|cheers|"
                      r"nothing else)[\s,.!]*)+$", re.IGNORECASE)


NO_INPUT_MESSAGE = Prompt._validate("Sorry, I didn't hear you. What can I help you with?")
UNSURE_MESSAGE = Prompt._validate("I'm not sure about that. Let me put you through to someone who can help.")


class ListenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_seconds: Duration = Field(default=15.0, gt=0, le=120)
    end_silence: Duration = Field(default=0.8, gt=0, le=10)
    no_input: Duration = Field(default=6.0, gt=0, le=60)
    max_no_input: int = Field(default=2, ge=1, le=10)
    vad_mode: int = Field(default=2, ge=0, le=3)


class WebhookTool(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    url: str
    parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    timeout: Duration = Field(default=5.0, gt=0, le=30)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TOOL_NAME.match(value) or value in ("transfer", "end_call"):
            raise ValueError(f"tool name {value!r} must be a name (letters, digits, _) other than transfer/end_call")
        return value


class AskAiNode(Node):
    """Answer questions from the tenant's documents, turn after turn."""

    TYPE: ClassVar[str] = "ask_ai"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("done", "unsure", "transfer")
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"transfer"})
    WAITS_FOR_INPUT: ClassVar[bool] = True

    type: Literal["ask_ai"]
    prompt: Prompt | None = None
    instructions: str = ""
    knowledge: bool = True
    top_k: int = Field(default=4, ge=1, le=20)
    min_score: float = Field(default=0.3, ge=-1.0, le=1.0)
    max_turns: int = Field(default=6, ge=1, le=50)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    max_silence: Duration = Field(default=3.0, gt=0, le=30)
    filler: str | None = "One moment, please."
    llm_timeout: Duration = Field(default=8.0, gt=0, le=120)
    answer_timeout: Duration = Field(default=30.0, gt=0, le=300)
    follow_up: Prompt | None = None
    no_input_message: Prompt | None = None    # default: NO_INPUT_MESSAGE
    unsure_message: Prompt | None = None      # default: UNSURE_MESSAGE
    goodbye: Prompt | None = None
    transfer_to: dict[str, str] = Field(default_factory=dict)
    end_call: bool = True
    webhooks: list[WebhookTool] = Field(default_factory=list)
    transfer_var: VarName = "transfer_target"
    hints: list[str] = Field(default_factory=list)
    voice: str | None = None
    barge_in: bool = True
    preemptive: bool = True

    @model_validator(mode="after")
    def _targets(self) -> AskAiNode:
        for name, number in self.transfer_to.items():
            if not _TOOL_NAME.match(name):
                raise ValueError(f"transfer target name {name!r} must be letters, digits and _")
            if not _TARGET.match(number):
                raise ValueError(f"transfer target {name!r}: {number!r} is not an extension")
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError("two webhook tools have the same name")
        return self

    def check(self, env: LoadEnv) -> list[NodeProblem]:
        problems = super().check(env)
        for i, hook in enumerate(self.webhooks):
            problem = url_problem(hook.url, env.allowed_url_hosts)
            if problem:
                problems.append(NodeProblem(("webhooks", i, "url"), problem))
        return problems

    def prompts(self) -> Any:
        for name in ("prompt", "follow_up", "no_input_message", "unsure_message", "goodbye"):
            value = getattr(self, name)
            if value is not None:
                yield (name,), value

    # ------------------------------------------------------------------ call time

    def _folder(self, ctx: FlowContext) -> Path:
        base = ctx.recordings_dir / "utterances" if ctx.recordings_dir else Path(tempfile.gettempdir()) / "ivr-ai"
        base.mkdir(parents=True, exist_ok=True)
        return base

    def _say(self, ctx: FlowContext, prompt: Prompt | None) -> str | None:
        """Play a prompt with DTMF barge-in; returns the key that cut it."""
        if prompt is None:
            return None
        if prompt.kind == "text" and ctx.extensions.get("tts") is not None:
            played = play(ctx, render(ctx, ctx.render(prompt.template), self.voice, 10.0))
        else:
            played = play_prompt(ctx, prompt, terminators=DTMF_KEYS, voice=self.voice)
        return played.terminator

    def secretary_settings(self) -> SecretarySettings:
        """This node's settings as the secretary engine takes them (the same on every channel)."""
        return SecretarySettings(
            instructions=self.instructions, knowledge=self.knowledge, top_k=self.top_k, min_score=self.min_score,
            transfer_targets=dict(self.transfer_to), allow_end_call=self.end_call,
            webhooks=tuple(EngineWebhookTool(w.name, w.description, w.url, dict(w.parameters), w.timeout)
                           for w in self.webhooks),
            llm_timeout=self.llm_timeout, channel="phone")

    def _secretary(self, ctx: FlowContext) -> Secretary:
        services = SecretaryServices(llm=ctx.extensions.get("llm"), retriever=ctx.extensions.get("retriever"),
                                     tools=call_webhooks(ctx))
        return Secretary(self.secretary_settings(), services, log=ctx.log.bind(node=ctx.node_id),
                         passthrough=(CallEnded,))

    def _retrieve(self, secretary: Secretary, question: str, turn: dict[str, Any]) -> Grounding:
        """The engine's grounding, written into the call record's turn."""
        grounding = secretary.ground(question)
        latency = turn["latency_ms"]
        if grounding.retrieval_ms is not None:
            latency["retrieval_ms"] = grounding.retrieval_ms
        if grounding.error is not None:
            turn["retrieval_error"] = grounding.error
        elif grounding.retrieval_ms is not None:
            latency["embed_ms"] = grounding.embed_ms
            latency["search_ms"] = grounding.search_ms
            turn["sources"] = [p.as_dict() for p in grounding.retrieved]
        return grounding

    def _prepare(self, ctx: FlowContext, question: str, history: list[Any], turn: dict[str, Any]) -> PreparedAnswer:
        """Start the answer to `question` (retrieval, LLM, synthesis); nothing plays yet."""
        history = list(history)

        secretary = self._secretary(ctx)

        def make_plan() -> AnswerPlan:
            return secretary.plan(question, history, self._retrieve(secretary, question, turn))

        return PreparedAnswer(ctx, question, make_plan, voice=self.voice, tts_timeout=10.0,
                              deadline=self.answer_timeout)

    def _answer(self, ctx: FlowContext, prepared: PreparedAnswer, quiet_since: float, turn: dict[str, Any],
                folder: Path, index: int) -> tuple[Decision | None, Any, bytes]:
        prepared.commit()
        monitor = None
        starting = None
        recorder = background_recorder(ctx) if self.barge_in else None
        if recorder is not None:
            uuid = ctx.info.uuid if ctx.info else "call"
            monitor = BargeInMonitor(ctx, recorder, folder / f"{uuid}_{ctx.node_id}_{index}_bargein.wav")
            starting = gevent.spawn(monitor.start)   # while the answer is prepared: no added latency

        def before_play() -> None:
            # record_session must be queued on the channel before the first playback, or it would
            # only start after it (a preemptive answer's audio is ready at once).
            if starting is not None:
                starting.join(timeout=5.0)

        spoken = Spoken()
        try:
            speak_answer(ctx, prepared.synthesis, quiet_since=quiet_since, max_silence=self.max_silence,
                         filler=self.filler, voice=self.voice, deadline=self.answer_timeout,
                         monitor=monitor, before_play=before_play, spoken=spoken)
        except CallEnded:
            # Hung up mid-answer: the turn still says what was asked, found and said so far.
            turn["answer"] = " ".join(spoken.sentences)
            turn["spoken_sentences"] = len(spoken.sentences)
            turn["outcome"] = "caller_hangup"
            raise
        finally:
            if monitor is not None and starting is not None:
                starting.join(timeout=10)
                if starting.successful() and starting.value:
                    monitor.stop()
            prepared.cancel()
        speech = monitor.speech if monitor is not None and spoken.barge_in == "speech" else b""
        decision = spoken.decision if isinstance(spoken.decision, Decision) else prepared.decision()
        lat = turn["latency_ms"]
        if prepared.started_at < quiet_since:
            turn["preemptive"] = True
            lat["prepared_ahead_ms"] = round((quiet_since - prepared.started_at) * 1000, 1)
        if decision is not None and decision.first_token_at is not None:
            lat["llm_first_token_ms"] = round((decision.first_token_at - quiet_since) * 1000, 1)
            if decision.started_at is not None:
                lat["llm_ms"] = round((decision.first_token_at - decision.started_at) * 1000, 1)
        if spoken.first_audio_at is not None:
            lat["tts_first_audio_ms"] = round((spoken.first_audio_at - quiet_since) * 1000, 1)
            lat["tts_ms"] = spoken.first_render_ms or 0.0
        if spoken.playback_started_at is not None:
            lat["playback_start_ms"] = round((spoken.playback_started_at - quiet_since) * 1000, 1)
        if spoken.answer_started_at is not None:
            lat["answer_start_ms"] = round((spoken.answer_started_at - quiet_since) * 1000, 1)
        turn["fillers"] = spoken.fillers
        turn["spoken_sentences"] = len(spoken.sentences)
        if spoken.barge_in:
            turn["barge_in"] = spoken.barge_in
        if spoken.timed_out:
            turn["timed_out"] = True
        if decision is not None:
            turn["llm"] = decision.provider
            if decision.fallback:
                turn["fallback"] = decision.fallback
            if decision.attempts:
                turn["llm_attempts"] = [a.as_dict() for a in decision.attempts]
            if decision.tool_calls:
                turn["tool_calls"] = [{"name": c.name} for c in decision.tool_calls]
        turn["answer"] = " ".join(spoken.sentences) if spoken.barge_in else (
            decision.text if decision is not None and decision.kind == "answer" else " ".join(spoken.sentences))
        return decision, spoken, speech

    def run(self, ctx: FlowContext) -> str:
        ctx.ensure_answered()
        turns: list[dict[str, Any]] = ctx.extensions.setdefault("turns", [])
        folder = self._folder(ctx)
        uuid = ctx.info.uuid if ctx.info else "call"
        history: list[Any] = []
        answered = no_input = 0
        prefix = b""
        pending_prompt = self.prompt
        index = 0
        from providers.llm.base import ChatMessage

        while True:
            index += 1
            cut = self._say(ctx, pending_prompt)
            pending_prompt = None
            path = folder / f"{uuid}_{ctx.node_id}_{index}.wav"
            turn: dict[str, Any] = {"node": ctx.node_id, "turn": index, "latency_ms": {}}
            turns.append(turn)    # now: a caller hanging up at any moment still leaves the turn in the record

            def prepare(text: str, turn: dict[str, Any] = turn, history: list[Any] = history) -> PreparedAnswer:
                return self._prepare(ctx, text.strip(), history, turn)

            try:
                heard: Heard = listen(ctx, path, max_seconds=self.listen.max_seconds,
                                      end_silence=self.listen.end_silence, no_input=self.listen.no_input,
                                      hints=self.hints, vad_mode=self.listen.vad_mode, prefix=prefix,
                                      stt_timeout=max(5.0, self.listen.max_seconds),
                                      prepare=prepare if self.preemptive else None)
            except CallEnded:
                turn["outcome"] = "caller_hangup"
                raise
            finally:
                path.unlink(missing_ok=True)
            prepared = heard.prepared if isinstance(heard.prepared, PreparedAnswer) else None
            prefix = b""
            turn["latency_ms"].update(heard.stages())
            turn["stt"] = heard.stt_provider
            turn["speculative_stt"] = heard.speculative
            turn["streamed_stt"] = heard.streamed
            if cut or heard.dtmf:
                turn["dtmf"] = True
            question = heard.transcript.strip()
            turn["caller"] = question
            if prepared is not None and (not question or _CLOSING.match(question) or prepared.question != question):
                prepared.cancel()
                prepared = None
            if not question:
                no_input += 1
                turn["outcome"] = "no_input"
                if no_input >= self.listen.max_no_input:
                    return self._finish(ctx, "unsure", answered, no_input, self.unsure_message or UNSURE_MESSAGE)
                pending_prompt = self.no_input_message or NO_INPUT_MESSAGE
                continue
            no_input = 0
            if _CLOSING.match(question):
                turn["outcome"] = "done"
                return self._finish(ctx, "done", answered, no_input, self.goodbye)
            quiet_since = heard.detected_at or time.monotonic()
            if prepared is None:
                prepared = self._prepare(ctx, question, history, turn)
            decision, spoken, speech = self._answer(ctx, prepared, quiet_since, turn, folder, index)
            turn["outcome"] = decision.kind if decision is not None else ("barge_in" if spoken.barge_in else "error")
            if spoken.barge_in:
                # The caller cut the answer: what they said (or typed) starts the next turn.
                history += [ChatMessage("user", question), ChatMessage("assistant", " ".join(spoken.sentences))]
                answered += 1
                prefix = speech  # the start of what the caller said over the answer
                if answered >= self.max_turns:
                    return self._finish(ctx, "done", answered, no_input, self.goodbye)
                continue
            if decision is None or decision.kind == "error":
                return self._finish(ctx, "unsure", answered, no_input, self.unsure_message or UNSURE_MESSAGE)
            if decision.kind == "unsure":
                return self._finish(ctx, "unsure", answered, no_input, self.unsure_message or UNSURE_MESSAGE)
            if decision.kind == "transfer" and decision.target is not None:
                return self._transfer(ctx, decision.target, answered)
            if decision.kind == "end_call":
                return self._finish(ctx, "done", answered, no_input, self.goodbye)
            history += [ChatMessage("user", question), ChatMessage("assistant", decision.text)]
            answered += 1
            if answered >= self.max_turns:
                return self._finish(ctx, "done", answered, no_input, self.goodbye)
            pending_prompt = self.follow_up

    def _finish(self, ctx: FlowContext, outcome: str, answered: int, no_input: int, message: Prompt | None) -> str:
        ctx.note(answered=answered, no_input=no_input)
        self._say(ctx, message)
        return outcome

    def _transfer(self, ctx: FlowContext, target: str, answered: int) -> str:
        number = self.transfer_to[target]
        ctx.vars[self.transfer_var] = number
        ctx.note(answered=answered, transfer=target)
        if "transfer" in self.edge_map():
            return "transfer"
        ctx.call.transfer(number, context=ctx.default_transfer_context())
        return "transfer"


def secretary_settings_of(flow: Flow, node_id: str | None = None, *, channel: str = "phone") -> SecretarySettings:
    """The secretary settings of a flow's `ask_ai` node (the first one when `node_id` is None), for
    another channel that must answer as the tenant's calls do; `LookupError` when there is none."""
    nodes = [(name, node) for name, node in flow.nodes.items() if isinstance(node, AskAiNode)]
    if node_id is not None:
        nodes = [(name, node) for name, node in nodes if name == node_id]
    if not nodes:
        where = f"node {node_id!r}" if node_id else "an ask_ai node"
        raise LookupError(f"flow {flow.name!r} has no {where} of type ask_ai")
    return nodes[0][1].secretary_settings().overridden(channel=channel)


def secretary_settings_of_text(yaml_text: str, source: str, node_id: str | None = None, *,
                               channel: str = "phone") -> SecretarySettings:
    """`secretary_settings_of` for a flow's YAML text (a published version)."""
    from ivr_flows.loader import load_flow_text

    return secretary_settings_of(load_flow_text(yaml_text, source), node_id, channel=channel)
