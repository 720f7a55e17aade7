"""IVR flows: a declarative YAML flow language, its loader/validator, and the runner.

Public API (used by the controller and the CLI):
    load_flow_file(path, **options) -> Flow
    load_flow_text(text, source, **options) -> Flow
    validate_paths(paths, **options) -> list[FlowIssue]
    FlowValidationError(.errors: list[FlowIssue]);  FlowIssue(source, line, column, node, message)
    FlowRunner(flow, ctx, step_limit=200).run() -> RunResult
    FlowContext, Synthesizer, Recognizer;  NODE_TYPES
Options: prompt_dir, allowed_url_hosts, known_flows, node_types.

Format reference (the long form with examples is docs/flows.md; the JSON Schema is
docs/flow.schema.json, printed by `ivr flows schema`):

    flow: acme-main                 # name, unique per tenant (goto_flow uses it)
    description: Acme main line
    language: en-US                 # for the synthesizer
    timezone: America/Sao_Paulo     # optional: `now` in templates, business_hours default
    start: hours                    # first node
    vars: {operator: "1000"}        # initial variables (values set before the run win)
    nodes:
      <id>:                         # letters, digits, _ and -
        type: <node type>
        description: …              # optional, for people and graphs
        next: <id> | {<outcome>: <id>, …}
        …                           # the node type's own keys

`next: <id>` sends every outcome that needs an edge (all but `error` and the ones that end the
flow) to <id>; the mapping form names outcomes one by one. An outcome with no edge ends the run
with that outcome; `error` may always be mapped.

Node types (outcomes; * = waits for caller input, so it may close a loop):
    say             text, voice, barge_in                                  done
    play            file | url, barge_in                                   done
    pause           duration                                               done
    menu*           prompt, options{key: id | {next, words}}, input[dtmf,speech], timeout,
                    inter_digit_timeout, terminator, max_attempts, max_no_input, max_no_match,
                    no_input, no_match, barge_in, type_ahead(flush|keep), var, speech_var,
                    utterance_max, speech_silence, voice          <option keys>, speech, failure
    collect*        prompt, var, min_length, max_length, terminator, pattern, timeout,
                    inter_digit_timeout, max_attempts, no_input, invalid, confirm,
                    confirm_prompt, barge_in, type_ahead, voice            collected, failure
    record*         prompt, beep, max_seconds, silence_seconds, silence_threshold, terminators,
                    min_seconds, transcribe, var, transcript_var           recorded, empty
    transfer        to, dialplan, context | bridge, ring_timeout, hangup_after_bridge; channel_vars
                                          transferred | bridged, no_answer, busy, failed
    hangup          say, cause                                             hangup
    business_hours  timezone, open{mon-fri: "08:00-18:00"}, holidays, closures   open, closed
    set             vars{name: value}                                      done
    branch          conditions[{if, next, name}], default                  <names>, default
    goto_flow       flow                                                   entered
    webhook         url, method, headers, body, timeout, retries, backoff, sign_with, save,
                    status_var                                             ok
Every node also has `error`. The first node that plays media or listens (say, play, pause,
menu, collect, record, a hangup with `say`) answers the call; transfers and bridges do not.
Prompts are a text, {file: name} (under the tenant's prompt folder) or {url: address} (allowed
hosts only). Durations: 5s, 500ms, 2m or seconds. Texts are sandboxed
jinja2 templates: {{ vars.x }}, {{ caller.number }}, {{ call.uuid }}, {{ now.hour }}.

Errors found at load (all at once, each with file:line:column and node): invalid YAML, unknown
key or node type (did you mean …), wrong type, bad template, missing target node, an outcome
with no edge, an unknown outcome in `next`, unreachable node, a loop with no caller input,
prompt file missing or outside the prompt folder, URL host not allowed, unknown time zone.
"""

from __future__ import annotations

from ivr_flows.call import CallEnded, CallInfo
from ivr_flows.context import FlowContext, Recognizer, Recording, Synthesizer
from ivr_flows.errors import (
    FlowError,
    FlowIssue,
    FlowLoaderError,
    FlowTemplateError,
    FlowValidationError,
    PromptPathError,
    WebhookError,
)
from ivr_flows.flow import Flow
from ivr_flows.loader import load_flow_file, load_flow_text, validate_paths
from ivr_flows.nodes import NODE_TYPES
from ivr_flows.runner import DEFAULT_STEP_LIMIT, FlowRunner, RunResult, Step

__all__ = [
    "DEFAULT_STEP_LIMIT",
    "NODE_TYPES",
    "CallEnded",
    "CallInfo",
    "Flow",
    "FlowContext",
    "FlowError",
    "FlowIssue",
    "FlowLoaderError",
    "FlowRunner",
    "FlowTemplateError",
    "FlowValidationError",
    "PromptPathError",
    "Recognizer",
    "Recording",
    "RunResult",
    "Step",
    "Synthesizer",
    "WebhookError",
    "load_flow_file",
    "load_flow_text",
    "validate_paths",
]
