"""The exception family of `ivr_flows`, and `FlowIssue` (one located problem in a flow file).

    FlowError                      base of everything `ivr_flows` raises on purpose
    ├── FlowValidationError        a flow file (or text) failed validation; `.errors` lists every
    │                              `FlowIssue` found in it, all at once
    ├── YamlSyntaxError            the text is not YAML (inside the loader; it becomes one
    │                              FlowIssue of a FlowValidationError)
    ├── FlowTemplateError          a `{{ … }}` template failed to render at call time
    │                              (StrictUndefined: a variable that is not set, a sandbox refusal)
    ├── PromptPathError            a prompt file escapes the tenant's prompt folder, or a URL's host
    │                              is not in the tenant's allow-list (refused at load and at run)
    ├── FlowLoaderError            `goto_flow` could not get the flow it names
    └── WebhookError               a webhook failed after its retries (status, timeout, bad JSON)

`ivr_flows.call.CallEnded` is *not* in this family on purpose: a caller hanging up is an
outcome (`caller_hangup`), not an error. Node code raises these errors; the runner alone
decides what is fatal (an exception in a node takes the node's `error` edge, or ends the run
with outcome `error`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlowIssue:
    """One problem in a flow file, located: 1-based line and column, the node id when known."""

    source: str
    line: int
    column: int
    node: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}:{self.column}: "
        if self.node is not None:
            return f"{where}node '{self.node}': {self.message}"
        return f"{where}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "column": self.column,
            "node": self.node,
            "message": self.message,
        }


class FlowError(Exception):
    """Base of the errors `ivr_flows` raises on purpose."""


class FlowValidationError(FlowError):
    """A flow failed validation; `errors` holds every issue found, sorted by position."""

    def __init__(self, errors: list[FlowIssue]) -> None:
        self.errors = sorted(errors, key=lambda i: (i.source, i.line, i.column, i.message))
        count = len(self.errors)
        head = "\n".join(str(i) for i in self.errors)
        super().__init__(f"{count} error{'s' if count != 1 else ''} in flow:\n{head}")


class YamlSyntaxError(FlowError):
    """The text is not valid YAML; `line` and `column` (1-based) are where ruamel saw the problem."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class FlowTemplateError(FlowError):
    """A template could not be rendered at call time."""


class PromptPathError(FlowError):
    """A prompt path or URL that the tenant may not use."""


class FlowLoaderError(FlowError):
    """`goto_flow` could not load the flow it names."""


class WebhookError(FlowError):
    """A webhook request failed (after retries, when the failure was retryable)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
