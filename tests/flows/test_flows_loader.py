"""Loader and validation: the broken-flow corpus (exact file:line:col, node, message), examples,
located errors of every class, tenant checks (prompt folder, URL hosts, goto targets)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

import pytest

import ivr_flows
from ivr_flows import FlowIssue, FlowValidationError, load_flow_file, load_flow_text, validate_paths
from ivr_flows.durations import parse_duration
from ivr_flows.nodes import NODE_TYPES
from ivr_flows.nodes.base import Node

HERE = Path(__file__).parent
BROKEN = HERE / "broken"
PROMPTS = HERE / "prompts"
EXAMPLES = HERE.parent.parent / "examples" / "flows"
CORPUS_OPTIONS = {"prompt_dir": PROMPTS, "allowed_url_hosts": ["media.example.com", "api.example.com"]}


def errors_of(text: str, **options: object) -> list[str]:
    with pytest.raises(FlowValidationError) as caught:
        load_flow_text(text, "t.yaml", **options)  # type: ignore[arg-type]
    return [str(issue) for issue in caught.value.errors]


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_corpus_reports_exactly_the_expected_errors(path: Path) -> None:
    expected = [line for line in path.with_suffix(".expect").read_text().splitlines() if line]
    with pytest.raises(FlowValidationError) as caught:
        load_flow_file(path, **CORPUS_OPTIONS)
    got = [str(issue) for issue in caught.value.errors]
    assert got == [f"{path}:{line}" for line in expected]
    assert validate_paths([path], **CORPUS_OPTIONS) == caught.value.errors


def test_every_broken_file_has_expectations() -> None:
    assert sorted(p.stem for p in BROKEN.glob("*.yaml")) == sorted(p.stem for p in BROKEN.glob("*.expect"))
    assert len(list(BROKEN.glob("*.yaml"))) >= 10


def test_issue_fields_and_format() -> None:
    with pytest.raises(FlowValidationError) as caught:
        load_flow_file(BROKEN / "unknown_key.yaml")
    issue = next(i for i in caught.value.errors if "timout" in i.message)
    assert issue == FlowIssue(
        str(BROKEN / "unknown_key.yaml"), 10, 5, "menu", "unknown key 'timout' (did you mean 'timeout'?)"
    )
    assert (
        str(issue) == f"{BROKEN / 'unknown_key.yaml'}:10:5: node 'menu': unknown key 'timout' (did you mean 'timeout'?)"
    )
    assert issue.as_dict()["line"] == 10
    assert "3 errors in flow" in str(caught.value)


@pytest.mark.parametrize("name", ["demo.yaml", "main.yaml", "account.yaml"])
def test_examples_are_valid_with_tenant_checks(name: str) -> None:
    flow = load_flow_file(
        EXAMPLES / name,
        prompt_dir=PROMPTS,
        allowed_url_hosts=["crm.example.com"],
        known_flows={"demo-main", "acme-main", "acme-account"},
    )
    assert flow.source == str(EXAMPLES / name)
    assert flow.start in flow.nodes
    first = (EXAMPLES / name).read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../docs/flow.schema.json"


def test_demo_flow_keeps_the_node_ids_the_end_to_end_tests_use() -> None:
    flow = load_flow_file(EXAMPLES / "demo.yaml")
    assert flow.name == "demo-main"
    assert {"welcome", "menu", "sales", "support", "operator", "goodbye"} <= set(flow.nodes)
    assert flow.next_node("welcome", "done") == "menu"
    assert flow.next_node("menu", "1") == "sales"
    assert flow.next_node("menu", "2") == "support"
    assert flow.next_node("menu", "failure") == "operator"
    menu = flow.nodes["menu"]
    assert menu.max_attempts == 3  # type: ignore[attr-defined]


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    text = """\
flow: many
start: a
nodes:
  a: {type: say, txt: hi, next: b}
  b: {type: menu, prompt: "x", options: {"1": nowhere}}
  c: {type: wait}
"""
    assert errors_of(text) == [
        "t.yaml:4:3: node 'a': missing required key 'text'",
        "t.yaml:4:18: node 'a': unknown key 'txt' (did you mean 'text'?)",
        "t.yaml:5:3: node 'b': outcome 'failure' has no edge (add it under 'next', e.g. next: {failure: <node>})",
        "t.yaml:5:47: node 'b': outcome '1' goes to node 'nowhere', which does not exist",
        "t.yaml:6:3: node 'c': unreachable: no path from start node 'a' leads here",
        "t.yaml:6:13: node 'c': unknown node type 'wait'; known types: " + ", ".join(NODE_TYPES),
    ]


def test_yaml_syntax_error_has_ruamel_position() -> None:
    assert errors_of("flow: x\nnodes:\n  a: [1, 2\n  b: 3\n") == [
        "t.yaml:4:4: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence "
        "that starts at line 3, column 6)"
    ]
    assert errors_of("flow: a\nflow: b\nstart: x\nnodes: {x: {type: hangup}}\n")[0].startswith(
        't.yaml:2:1: invalid YAML: found duplicate key "flow"'
    )


def test_a_file_that_is_not_a_mapping() -> None:
    assert errors_of("- just\n- a list\n") == ["t.yaml:1:1: a flow file is a mapping with 'flow', 'start' and 'nodes'"]
    assert errors_of("") == ["t.yaml:1:1: a flow file is a mapping with 'flow', 'start' and 'nodes'"]


def test_node_ids_and_node_shapes() -> None:
    text = """\
flow: ids
start: 9start
nodes:
  9start: {type: say, text: hi, next: bad}
  bad: just a string
"""
    assert errors_of(text) == [
        "t.yaml:4:3: node '9start': a node id is letters, digits, '_' or '-', starting with a letter or '_'",
        "t.yaml:5:8: node 'bad': a node is a mapping with a 'type', got 'just a string'",
    ]


def test_unknown_outcome_and_duplicate_edge() -> None:
    text = """\
flow: outcomes
start: m
nodes:
  m:
    type: menu
    prompt: hi
    options: {"1": {next: x}}
    next: {failure: x, "1": x, speach: x}
  x: {type: hangup}
"""
    assert errors_of(text) == [
        "t.yaml:8:24: node 'm': outcome '1' has two edges ('options.1.next' and 'next.1')",
        "t.yaml:8:32: node 'm': 'speach' is not an outcome of a menu node; its outcomes are 1, failure, error",
    ]


def test_speech_outcome_is_known_for_speech_menus() -> None:
    text = """\
flow: speechy
start: m
nodes:
  m:
    type: menu
    prompt: hi
    input: [speech]
    options: {sales: {next: x, words: [sales]}, help: {next: x}}
    next: {failure: x, speach: x}
  x: {type: hangup}
"""
    assert errors_of(text) == [
        "t.yaml:4:3: node 'm': option 'help' has no words, so a speech-only menu can never choose it"
    ]


def test_option_keys_must_be_dtmf_for_dtmf_menus() -> None:
    text = (
        "flow: k\nstart: m\nnodes:\n  m: {type: menu, prompt: hi, options: {sales: x}, next: {failure: x}}\n"
        "  x: {type: hangup}\n"
    )
    assert errors_of(text) == ["t.yaml:4:3: node 'm': option key 'sales' is not made of DTMF keys (0-9, *, #)"]


def test_business_hours_needs_a_timezone_here_or_at_the_top() -> None:
    text = (
        'flow: bh\nstart: h\nnodes:\n  h: {type: business_hours, open: {daily: "09:00-17:00"}, next: x}\n'
        "  x: {type: hangup}\n"
    )
    assert errors_of(text) == [
        "t.yaml:4:13: node 'h': type: business_hours needs a 'timezone' (here or at the flow's top level)"
    ]
    flow = load_flow_text("timezone: Europe/Lisbon\n" + text, "t.yaml")
    assert flow.timezone == "Europe/Lisbon"


def test_goto_flow_targets_checked_when_known_flows_are_given() -> None:
    text = "flow: g\nstart: j\nnodes:\n  j: {type: goto_flow, flow: billing-mian}\n"
    assert load_flow_text(text, "t.yaml").nodes["j"].flow == "billing-mian"  # type: ignore[attr-defined]
    assert errors_of(text, known_flows={"billing-main", "g"}) == [
        "t.yaml:4:30: node 'j': flow: no flow named 'billing-mian' (did you mean 'billing-main'?)"
    ]


def test_symlink_out_of_the_prompt_folder_is_refused_at_load(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    os.symlink(secret, prompts / "link.wav")
    (prompts / "ok.wav").write_bytes(b"RIFF")
    text = (
        "flow: s\nstart: a\nnodes:\n  a: {type: play, file: link.wav, next: b}\n"
        "  b: {type: play, file: ok.wav, next: c}\n  c: {type: hangup}\n"
    )
    assert errors_of(text, prompt_dir=prompts) == [
        "t.yaml:4:25: node 'a': file: prompt file 'link.wav' is outside the tenant's prompt folder"
    ]


def test_templated_prompt_files_are_checked_at_run_not_load() -> None:
    text = (
        'flow: s\nstart: a\nnodes:\n  a: {type: play, file: "{{ vars.lang }}/hi.wav", next: c}\n  c: {type: hangup}\n'
    )
    flow = load_flow_text(text, "t.yaml", prompt_dir=PROMPTS)
    assert flow.nodes["a"].file.source == "{{ vars.lang }}/hi.wav"  # type: ignore[attr-defined]


def test_webhook_url_host_checked_at_load_when_hosts_are_given() -> None:
    text = (
        'flow: w\nstart: a\nnodes:\n  a: {type: webhook, url: "https://crm.evil.net/x", next: b}\n  b: {type: hangup}\n'
    )
    load_flow_text(text, "t.yaml")
    assert errors_of(text, allowed_url_hosts=["*.example.com"]) == [
        "t.yaml:4:27: node 'a': url: host 'crm.evil.net' is not in the tenant's allowed URL hosts"
    ]
    load_flow_text(text.replace("crm.evil.net", "crm.example.com"), "t.yaml", allowed_url_hosts=["*.example.com"])


def test_validate_paths_walks_folders_and_reports_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text((EXAMPLES / "demo.yaml").read_text())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.yml").write_text("flow: b\nstart: a\nnodes:\n  a: {type: hangup, cuse: X}\n")
    issues = validate_paths([tmp_path, tmp_path / "missing.yaml"])
    assert [str(i) for i in issues] == [
        f"{tmp_path / 'sub' / 'bad.yml'}:4:21: node 'a': unknown key 'cuse' (did you mean 'cause'?)",
        f"{tmp_path / 'missing.yaml'}:1:1: cannot read the file: [Errno 2] No such file or directory: "
        f"'{tmp_path / 'missing.yaml'}'",
    ]
    assert validate_paths([tmp_path / "good.yaml"]) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), (3, 3.0), (1.5, 1.5), ("7", 7.0), (" 2.5s ", 2.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 sec", "-1s", "fast", True, None, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_numbers_in_yaml_become_texts_where_texts_are_expected() -> None:
    flow = load_flow_text("flow: n\nstart: t\nnodes:\n  t: {type: transfer, to: 1001}\n", "t.yaml")
    assert flow.nodes["t"].to.source == "1001"  # type: ignore[attr-defined]


class BeepNode(Node):
    """A node type added by another package (like ask_ai will be)."""

    TYPE: ClassVar[str] = "beep"
    type: Literal["beep"]
    times: int = 1

    def run(self, ctx: ivr_flows.FlowContext) -> str:
        return "done"


def test_extra_node_types_can_be_registered_with_the_loader() -> None:
    text = "flow: x\nstart: b\nnodes:\n  b: {type: beep, times: 2, next: h}\n  h: {type: hangup}\n"
    assert errors_of(text)[0].startswith("t.yaml:4:13: node 'b': unknown node type 'beep'")
    flow = load_flow_text(text, "t.yaml", node_types={**NODE_TYPES, "beep": BeepNode})
    assert flow.next_node("b", "done") == "h"
    assert errors_of(text.replace("times", "tims"), node_types={**NODE_TYPES, "beep": BeepNode}) == [
        "t.yaml:4:19: node 'b': unknown key 'tims' (did you mean 'times'?)"
    ]


DESIGN_EXAMPLE = """\
flow: acme-main
description: Acme main line
language: en-US
start: hours
vars: {operator: "1000"}
nodes:
  hours:
    type: business_hours
    timezone: America/Sao_Paulo
    open: {mon-fri: "08:00-18:00", sat: "09:00-12:00"}
    holidays: ["2026-12-25"]
    next: {open: welcome, closed: voicemail}
  welcome:
    type: say
    text: "Welcome to Acme."
    next: menu
  menu:
    type: menu                      # DTMF and speech in one step
    prompt: "Press 1 for sales, 2 for support, or tell me what you need."
    input: [dtmf, speech]
    options:
      "1": {next: sales, words: [sales, buy]}
      "2": {next: support, words: [support, help]}
    timeout: 5s
    max_attempts: 3
    no_input: "Sorry, I didn't hear you."
    no_match: "Sorry, I didn't get that."
    next: {speech: assistant, failure: operator}
  assistant:
    type: ask_ai                    # STT → RAG → LLM → TTS, several turns
    instructions: "You are Acme's receptionist. Answer from the documents only."
    knowledge: true
    max_turns: 6
    transfer_to: {sales: "1001", support: "1002"}
    next: {transfer: operator, unsure: operator, done: goodbye}
  sales: {type: transfer, to: "1001"}
  support: {type: transfer, to: "1002"}
  operator: {type: transfer, to: "{{ vars.operator }}"}
  voicemail: {type: record, prompt: "Leave a message after the tone.", max_seconds: 120, transcribe: true,
              next: goodbye}
  goodbye: {type: hangup, say: "Goodbye."}
"""


class AskAiStub(Node):
    """Stands in for the later ask_ai node type: its shape, outcomes and input flag."""

    TYPE: ClassVar[str] = "ask_ai"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("transfer", "unsure", "done")
    WAITS_FOR_INPUT: ClassVar[bool] = True
    type: Literal["ask_ai"]
    instructions: str
    knowledge: bool = False
    max_turns: int = 6
    transfer_to: dict[str, str] = {}

    def run(self, ctx: ivr_flows.FlowContext) -> str:
        return "done"


def test_the_design_documents_example_loads_with_ask_ai_registered() -> None:
    assert "ask_ai" in NODE_TYPES                    # the real node is built in
    assert "unknown node type 'ask_ai'" in errors_of(DESIGN_EXAMPLE, node_types={
        k: v for k, v in NODE_TYPES.items() if k != "ask_ai"})[0]
    flow = load_flow_text(DESIGN_EXAMPLE, "design.yaml")
    assert flow.next_node("menu", "speech") == "assistant"
    assert flow.next_node("voicemail", "recorded") == flow.next_node("voicemail", "empty") == "goodbye"
    assert flow.next_node("assistant", "unsure") == "operator"
