"""`menu`: offer choices by DTMF and/or speech in one step, with retries.

```yaml
menu:
  type: menu
  prompt: "Press 1 for sales, 2 for support, or tell me what you need."
  input: [dtmf, speech]
  options:
    "1": {next: sales, words: [sales, buy]}
    "2": {next: support, words: [support, help]}
    "0": operator                      # shorthand for {next: operator}
  timeout: 5s                          # wait for the first key after the prompt
  inter_digit_timeout: 2s              # between keys of a multi-key option ("10")
  max_attempts: 3                      # also max_no_input / max_no_match (default: max_attempts)
  no_input: "Sorry, I didn't hear you."
  no_match: "Sorry, I didn't get that."
  type_ahead: keep                     # keys pressed before the menu: keep (use) or flush
  next: {speech: assistant, failure: operator}
```

Outcomes: one per option key (its edge is the option's `next`, or `next.<key>`), `speech`
(speech that matched no option, when `speech` has an edge; the transcript goes to
`vars.<speech_var>`), `failure` (attempts used up), `error`.

How one attempt runs:
- DTMF only: `play_and_get_digits` over the prompt (barge-in: the first key stops the prompt).
- With speech: the prompt plays with every key as a terminator (DTMF barge-in); then the menu
  listens (`ivr_flows.speech_listen.listen`: our VAD on the live recording): the caller has
  `timeout` to start speaking, the utterance ends after `speech_silence` of silence (or at
  `utterance_max`), a key press also ends it; the tenant's STT (streamed as the caller speaks,
  else the Recognizer) transcribes it with every option's words as hints, and the words are
  matched (the earliest one said wins). An attempt in which the caller said nothing counts as
  `no_input`; speech that matched no option as `no_match`. What was heard (text, STT provider,
  the option it chose) is kept in the step's `heard` list for the call record; logs carry only
  its length. Without a Recognizer a DTMF+speech menu works as DTMF only; a speech-only menu
  takes `error`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ivr_flows.call import CallEnded, DigitsStatus, PlaybackStop
from ivr_flows.durations import Duration
from ivr_flows.nodes.base import Edge, Node, Prompt, VarName
from ivr_flows.prompts import DTMF_KEYS, play_prompt, prompt_and_get_digits

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

_DTMF_KEY_RE = re.compile(r"^[0-9*#]+$")
_WORD_RE = re.compile(r"[^\w']+", re.UNICODE)


def words_of(text: str) -> list[str]:
    return [w for w in _WORD_RE.split(text.lower()) if w]


class MenuOption(BaseModel):
    """One choice: where it leads and the words that pick it by speech."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    next: str | None = None
    words: list[str] = Field(default_factory=list)
    _shorthand: bool = PrivateAttr(default=False)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> Any:
        return {"anyOf": [{"type": "string", "description": "the next node's id"}, handler(schema)]}

    @model_validator(mode="wrap")
    @classmethod
    def _accept_shorthand(cls, value: Any, handler: Any) -> MenuOption:
        if isinstance(value, str | int):
            option = handler({"next": str(value)})
            option._shorthand = True
            return option  # type: ignore[no-any-return]
        return handler(value)  # type: ignore[no-any-return]


class MenuNode(Node):
    """Choices by DTMF and/or speech."""

    TYPE: ClassVar[str] = "menu"
    WAITS_FOR_INPUT: ClassVar[bool] = True

    type: Literal["menu"]
    prompt: Prompt
    options: dict[str, MenuOption]
    input: list[Literal["dtmf", "speech"]] = Field(default_factory=lambda: ["dtmf"])
    timeout: Duration = 5.0
    inter_digit_timeout: Duration = 2.0
    terminator: str = "#"
    max_attempts: int = Field(default=3, ge=1, le=10)
    max_no_input: int | None = Field(default=None, ge=1, le=10)
    max_no_match: int | None = Field(default=None, ge=1, le=10)
    no_input: Prompt | None = None
    no_match: Prompt | None = None
    barge_in: bool = True
    type_ahead: Literal["flush", "keep"] = "keep"
    var: VarName | None = None
    speech_var: VarName = "speech"
    utterance_max: Duration = 5.0
    speech_silence: Duration = 1.0
    voice: str | None = None

    @field_validator("input")
    @classmethod
    def _input_set(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("input needs at least one of dtmf, speech")
        if len(set(value)) != len(value):
            raise ValueError("input lists the same kind twice")
        return value

    @field_validator("terminator")
    @classmethod
    def _terminator(cls, value: str) -> str:
        if value not in ("", "#", "*"):
            raise ValueError("terminator must be '#', '*' or '' (none)")
        return value

    @model_validator(mode="after")
    def _options_fit_input(self) -> MenuNode:
        if not self.options:
            raise ValueError("a menu needs at least one option")
        for key, option in self.options.items():
            if "dtmf" in self.input and not _DTMF_KEY_RE.match(key):
                raise ValueError(f"option key {key!r} is not made of DTMF keys (0-9, *, #)")
            if self.terminator and self.terminator in key and len(key) > 1:
                raise ValueError(f"option key {key!r} contains the terminator {self.terminator!r}")
            if key in ("speech", "failure", "error"):
                raise ValueError(f"option key {key!r} is reserved for the menu's own outcome")
            if self.input == ["speech"] and not option.words:
                raise ValueError(f"option {key!r} has no words, so a speech-only menu can never choose it")
        return self

    # -- graph ---------------------------------------------------------------------------------
    def outcomes(self) -> tuple[str, ...]:
        own = [*self.options, "failure"]
        if "speech" in self.input:
            own.append("speech")
        return (*own, "error")

    def optional_outcomes(self) -> frozenset[str]:
        return frozenset({"error", "speech"})

    def own_edges(self) -> list[Edge]:
        edges = []
        for key, option in self.options.items():
            if option.next is not None:
                loc: tuple[str, ...] = ("options", key) if option._shorthand else ("options", key, "next")
                edges.append(Edge(key, option.next, loc))
        return edges

    def prompts(self) -> Any:
        for name in ("prompt", "no_input", "no_match"):
            value = getattr(self, name)
            if value is not None:
                yield (name,), value

    # -- call time -----------------------------------------------------------------------------
    @property
    def _max_len(self) -> int:
        return max(len(k) for k in self.options) if "dtmf" in self.input else 1

    def hints(self) -> list[str]:
        return list(dict.fromkeys(w for option in self.options.values() for w in option.words))

    def match_words(self, transcript: str) -> str | None:
        """The option whose word (or phrase) appears first in the transcript."""
        said = words_of(transcript)
        best: tuple[int, int, str] | None = None
        for order, (key, option) in enumerate(self.options.items()):
            for phrase in option.words:
                wanted = words_of(phrase)
                if not wanted:
                    continue
                for pos in range(len(said) - len(wanted) + 1):
                    if said[pos : pos + len(wanted)] == wanted:
                        if best is None or (pos, order) < best[:2]:
                            best = (pos, order, key)
                        break
        return best[2] if best else None

    def _more_digits(self, ctx: FlowContext, digits: str) -> str:
        while len(digits) < self._max_len:
            digit = ctx.call.read_dtmf(self.inter_digit_timeout)
            if digit is None or (self.terminator and digit == self.terminator):
                break
            digits += digit
        return digits

    def _attempt_dtmf(self, ctx: FlowContext, typed: str) -> tuple[str, str]:
        result = prompt_and_get_digits(
            ctx,
            self.prompt,
            min_digits=1,
            max_digits=self._max_len,
            timeout=self.timeout,
            digit_timeout=self.inter_digit_timeout,
            terminators=self.terminator if self._max_len > 1 else "",
            barge_in=self.barge_in,
            voice=self.voice,
            first_digits=typed,
        )
        if result.status is DigitsStatus.SUCCESS:
            return "digits", result.digits
        if result.status is DigitsStatus.TIMEOUT:
            return "no_input", ""
        return "digits", result.invalid

    def _utterance_path(self, ctx: FlowContext, attempt: int) -> Path:
        base = ctx.recordings_dir / "utterances" if ctx.recordings_dir else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        uuid = ctx.info.uuid if ctx.info else "call"
        return base / f"{uuid}_{ctx.node_id}_{attempt}.wav"

    def _attempt_speech(self, ctx: FlowContext, typed: str, attempt: int) -> tuple[str, str]:
        dtmf = "dtmf" in self.input
        digits = typed
        if not digits:
            played = play_prompt(
                ctx, self.prompt, terminators=DTMF_KEYS if dtmf and self.barge_in else "", voice=self.voice
            )
            if played.stop in (PlaybackStop.NOT_FOUND, PlaybackStop.ERROR):
                raise RuntimeError(f"menu prompt could not be played ({played.stop.value})")
            if dtmf and played.stop is PlaybackStop.TERMINATOR and played.terminator:
                digits = played.terminator
        if digits:
            return "digits", self._more_digits(ctx, digits)
        from ivr_flows.speech_listen import listen

        path = self._utterance_path(ctx, attempt)
        try:
            heard = listen(ctx, path, max_seconds=self.utterance_max, end_silence=self.speech_silence,
                           no_input=self.timeout, hints=self.hints(), terminators=DTMF_KEYS if dtmf else "",
                           stt_timeout=max(5.0, self.utterance_max))
        except CallEnded:
            raise
        except Exception as e:
            ctx.log.warning("flow.menu_stt_failed", node=ctx.node_id, error=type(e).__name__)
            return "no_match", ""
        finally:
            path.unlink(missing_ok=True)
        if heard.dtmf:
            return ("digits", self._more_digits(ctx, heard.dtmf)) if dtmf else ("no_match", "")
        transcript = heard.transcript.strip()
        if heard.stop == "no_input":
            return "no_input", ""
        self._heard(ctx, attempt, transcript, heard.stt_provider)
        return ("speech", transcript) if transcript else ("no_match", "")

    def _heard(self, ctx: FlowContext, attempt: int, text: str, provider: str) -> None:
        """What the caller said, for the call record (the step's detail) and, redacted, the log."""
        chosen = self.match_words(text) if text else None
        entry = {"attempt": attempt, "text": text, "stt": provider, "option": chosen}
        ctx.step_detail.setdefault("heard", []).append(entry)
        ctx.log.info("flow.menu_heard", node=ctx.node_id, attempt=attempt, heard=ctx.redact(text),
                     option=chosen, stt=provider)

    def run(self, ctx: FlowContext) -> str:
        speech = "speech" in self.input and ctx.recognizer is not None
        if "speech" in self.input and ctx.recognizer is None:
            ctx.log.warning("flow.menu_no_recognizer", node=ctx.node_id)
            if "dtmf" not in self.input:
                return "error"
        ctx.ensure_answered()
        pending = ctx.take_typeahead()
        typed = pending[: self._max_len] if self.type_ahead == "keep" else ""
        attempts = no_input = no_match = 0
        max_no_input = self.max_no_input or self.max_attempts
        max_no_match = self.max_no_match or self.max_attempts
        while True:
            attempts += 1
            if speech:
                kind, value = self._attempt_speech(ctx, typed, attempts)
            else:
                kind, value = self._attempt_dtmf(ctx, typed)
            typed = ""
            chosen: str | None = None
            if kind == "digits":
                chosen = value if value in self.options else None
                kind = "chosen" if chosen else "no_match"
            elif kind == "speech":
                chosen = self.match_words(value)
                if chosen is None and "speech" in self.edge_map():
                    ctx.vars[self.speech_var] = value
                    ctx.note(attempts=attempts, no_input=no_input, no_match=no_match, via="speech")
                    return "speech"
                kind = "chosen" if chosen else "no_match"
            if chosen is not None:
                if self.var:
                    ctx.vars[self.var] = chosen
                ctx.note(attempts=attempts, no_input=no_input, no_match=no_match)
                return chosen
            if kind == "no_input":
                no_input += 1
            else:
                no_match += 1
            if attempts >= self.max_attempts or no_input >= max_no_input or no_match >= max_no_match:
                ctx.note(attempts=attempts, no_input=no_input, no_match=no_match)
                return "failure"
            retry_prompt = self.no_input if kind == "no_input" else self.no_match
            if retry_prompt is not None:
                played = play_prompt(
                    ctx, retry_prompt, terminators=DTMF_KEYS if self.barge_in else "", voice=self.voice
                )
                if played.stop is PlaybackStop.TERMINATOR and played.terminator and "dtmf" in self.input:
                    typed = played.terminator
