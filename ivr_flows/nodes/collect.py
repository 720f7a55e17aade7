"""`collect`: read digits into a variable, check them, optionally read them back for confirmation.

```yaml
account:
  type: collect
  prompt: "Please enter your account number, then press pound."
  var: account
  min_length: 6
  max_length: 8
  terminator: "#"
  pattern: "^[0-9]{6,8}$"          # a full match, checked here (Python re)
  timeout: 7s
  inter_digit_timeout: 3s
  max_attempts: 3
  no_input: "I didn't get any digits."
  invalid: "That is not a valid account number."
  confirm: true                    # "You entered 1 2 3 4 5 6. Press 1 to confirm, or 2 to …"
  next: {collected: lookup, failure: operator}
```
`confirm_prompt` replaces the default read-back text. Outcomes: `collected` (the digits are in
`vars.<var>`), `failure` (attempts used up; the variable is removed), `error`.
The digits are never logged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ivr_flows.call import DigitsStatus, PlaybackStop
from ivr_flows.durations import Duration
from ivr_flows.nodes.base import Node, Prompt, VarName
from ivr_flows.prompts import DTMF_KEYS, play_prompt, prompt_and_get_digits
from ivr_flows.templating import Template

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class CollectNode(Node):
    """Digits into a variable."""

    TYPE: ClassVar[str] = "collect"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("collected", "failure")
    WAITS_FOR_INPUT: ClassVar[bool] = True

    type: Literal["collect"]
    prompt: Prompt
    var: VarName
    min_length: int = Field(default=1, ge=1, le=64)
    max_length: int = Field(default=16, ge=1, le=64)
    terminator: str = "#"
    pattern: str | None = None
    timeout: Duration = 5.0
    inter_digit_timeout: Duration = 3.0
    max_attempts: int = Field(default=3, ge=1, le=10)
    no_input: Prompt | None = None
    invalid: Prompt | None = None
    confirm: bool = False
    confirm_prompt: Prompt | None = None
    barge_in: bool = True
    type_ahead: Literal["flush", "keep"] = "flush"
    voice: str | None = None

    @field_validator("terminator")
    @classmethod
    def _terminator(cls, value: str) -> str:
        if value not in ("", "#", "*"):
            raise ValueError("terminator must be '#', '*' or '' (none)")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"pattern is not a valid regular expression: {e}") from e
        return value

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is larger than max_length ({self.max_length})")
        return self

    def prompts(self) -> Any:
        for name in ("prompt", "no_input", "invalid", "confirm_prompt"):
            value = getattr(self, name)
            if value is not None:
                yield (name,), value

    def _confirm_prompt(self) -> Prompt:
        if self.confirm_prompt is not None:
            return self.confirm_prompt
        return Prompt(
            "text",
            Template(f"You entered {{{{ vars.{self.var} | spell }}}}. Press 1 to confirm, or 2 to enter it again."),
        )

    def _valid(self, digits: str) -> bool:
        if not self.min_length <= len(digits) <= self.max_length:
            return False
        return self.pattern is None or re.fullmatch(self.pattern, digits) is not None

    def _confirmed(self, ctx: FlowContext) -> bool:
        answer = prompt_and_get_digits(
            ctx,
            self._confirm_prompt(),
            min_digits=1,
            max_digits=1,
            timeout=self.timeout,
            digit_timeout=self.inter_digit_timeout,
            terminators="",
            barge_in=True,
            voice=self.voice,
        )
        return answer.status is DigitsStatus.SUCCESS and answer.digits == "1"

    def run(self, ctx: FlowContext) -> str:
        ctx.ensure_answered()
        pending = ctx.take_typeahead()
        typed = pending[: self.max_length] if self.type_ahead == "keep" else ""
        no_input = invalid = 0
        for attempt in range(1, self.max_attempts + 1):
            result = prompt_and_get_digits(
                ctx,
                self.prompt,
                min_digits=self.min_length,
                max_digits=self.max_length,
                timeout=self.timeout,
                digit_timeout=self.inter_digit_timeout,
                terminators=self.terminator,
                barge_in=self.barge_in,
                voice=self.voice,
                first_digits=typed,
            )
            typed = ""
            retry: Prompt | None = None
            if result.status is DigitsStatus.TIMEOUT:
                no_input += 1
                retry = self.no_input
            elif result.status is DigitsStatus.SUCCESS and self._valid(result.digits):
                ctx.vars[self.var] = result.digits
                if not self.confirm or self._confirmed(ctx):
                    ctx.note(attempts=attempt, no_input=no_input, invalid=invalid, length=len(result.digits))
                    return "collected"
                ctx.vars.pop(self.var, None)
            else:
                invalid += 1
                retry = self.invalid
            if retry is not None and attempt < self.max_attempts:
                played = play_prompt(ctx, retry, terminators=DTMF_KEYS if self.barge_in else "", voice=self.voice)
                if played.stop is PlaybackStop.TERMINATOR and played.terminator:
                    typed = played.terminator
        ctx.vars.pop(self.var, None)
        ctx.note(attempts=self.max_attempts, no_input=no_input, invalid=invalid)
        return "failure"
