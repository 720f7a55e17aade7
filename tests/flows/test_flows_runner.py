"""The runner: path recording, outcomes without edges, error edges, caller hangup, step limit,
goto_flow, and the demo flow's paths with a scripted caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from flows_fakes import FakeCall, ListLogger, digits, invalid_digits, make_ctx, no_digits

from ivr_flows import CallEnded, FlowRunner, load_flow_file, load_flow_text
from ivr_flows.call import Call, PlaybackResult, PlaybackStop
from ivr_flows.errors import FlowLoaderError

EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "flows"


def flow_of(text: str, name: str = "t.yaml"):  # type: ignore[no-untyped-def]
    return load_flow_text(text, name)


def test_fake_call_implements_the_protocol() -> None:
    assert isinstance(FakeCall(), Call)


def test_demo_press_1_goes_to_sales() -> None:
    call = FakeCall(play_and_get_digits=[digits("1")])
    ctx = make_ctx(call)
    result = FlowRunner(load_flow_file(EXAMPLES / "demo.yaml"), ctx).run()
    assert result.outcome == "transferred"
    assert result.path == ["welcome", "menu", "sales"]
    assert call.of("transfer") == [{"extension": "1001", "dialplan": "XML", "context": "public"}]
    assert [s.outcome for s in result.steps] == ["done", "1", "transferred"]
    assert [s.type for s in result.steps] == ["say", "menu", "transfer"]


def test_demo_press_2_goes_to_support() -> None:
    call = FakeCall(play_and_get_digits=[digits("2")])
    result = FlowRunner(load_flow_file(EXAMPLES / "demo.yaml"), make_ctx(call)).run()
    assert result.path == ["welcome", "menu", "support"]
    assert call.of("transfer")[0]["extension"] == "1002"


def test_demo_three_failures_reach_the_operator() -> None:
    call = FakeCall(play_and_get_digits=[no_digits(), digits("7"), invalid_digits("99")])
    result = FlowRunner(load_flow_file(EXAMPLES / "demo.yaml"), make_ctx(call)).run()
    assert result.outcome == "transferred"
    assert result.path == ["welcome", "menu", "operator"]
    assert result.steps[1].outcome == "failure"
    assert result.steps[1].detail == {"attempts": 3, "no_input": 1, "no_match": 2}
    assert call.of("transfer")[0]["extension"] == "1000"
    spoken = [c["text"] for c in call.of("speak")]
    assert spoken == [
        "Welcome to the demo company.",
        "Press 1 for sales, 2 for support.",
        "Sorry, I didn't hear anything.",
        "Press 1 for sales, 2 for support.",
        "Sorry, that is not a valid option.",
        "Press 1 for sales, 2 for support.",
    ]


def test_demo_failed_operator_transfer_says_goodbye() -> None:
    call = FakeCall(play_and_get_digits=[no_digits()] * 3, transfer=[RuntimeError("transfer refused")])
    result = FlowRunner(load_flow_file(EXAMPLES / "demo.yaml"), make_ctx(call)).run()
    assert result.path == ["welcome", "menu", "operator", "goodbye"]
    assert result.outcome == "hangup"
    assert result.error is None
    assert result.steps[2].detail["error"] == "RuntimeError"
    assert call.of("hangup") == [{"cause": "NORMAL_CLEARING"}]


def test_step_records_have_offsets_and_durations() -> None:
    call = FakeCall(play_and_get_digits=[digits("1")])
    result = FlowRunner(load_flow_file(EXAMPLES / "demo.yaml"), make_ctx(call)).run()
    starts = [s.start_ms for s in result.steps]
    assert starts == sorted(starts) and starts[0] >= 0
    assert all(s.duration_ms >= 0 for s in result.steps)
    assert result.as_dict()["steps"][0]["node"] == "welcome"
    assert result.vars["operator"] == "1000"


LOOP = """\
flow: looping
start: menu
nodes:
  menu:
    type: menu
    prompt: "Press 1 to hear it again."
    options: {"1": again}
    next: {failure: bye}
  again: {type: say, text: "Again.", next: menu}
  bye: {type: hangup}
"""


def test_step_limit_stops_a_flow_that_never_ends() -> None:
    call = FakeCall(play_and_get_digits=[digits("1")] * 50)
    ctx = make_ctx(call)
    result = FlowRunner(flow_of(LOOP), ctx, step_limit=7).run()
    assert result.outcome == "step_limit"
    assert len(result.steps) == 7
    assert result.path == ["menu", "again"] * 3 + ["menu"]
    assert ctx.log.find("flow.step_limit")[0][0] == "warning"


def test_default_step_limit_is_200() -> None:
    call = FakeCall(play_and_get_digits=[digits("1")] * 300)
    result = FlowRunner(flow_of(LOOP), make_ctx(call)).run()
    assert (result.outcome, len(result.steps)) == ("step_limit", 200)


def test_step_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step_limit"):
        FlowRunner(flow_of(LOOP), make_ctx(FakeCall()), step_limit=0)


def test_caller_hangup_is_an_outcome_logged_at_info() -> None:
    call = FakeCall(end_at=("play_and_get_digits", 2), play_and_get_digits=[digits("1")])
    ctx = make_ctx(call)
    result = FlowRunner(flow_of(LOOP), ctx).run()
    assert result.outcome == "caller_hangup"
    assert result.path == ["menu", "again", "menu"]
    assert result.error is None
    assert [level for level, _ in ctx.log.find("flow.caller_hangup")] == ["info"]
    assert not [e for e in ctx.log.events if e[0] == "error"]


def test_an_exception_takes_the_error_edge_or_ends_the_run() -> None:
    text = """\
flow: errors
start: first
nodes:
  first: {type: say, text: "one", next: {done: second, error: recover}}
  recover: {type: say, text: "recovering", next: second}
  second: {type: say, text: "two", next: bye}
  bye: {type: hangup}
"""
    call = FakeCall(
        speak=[RuntimeError("media server on fire"), PlaybackResult(PlaybackStop.COMPLETED), ValueError("again")]
    )
    ctx = make_ctx(call)
    result = FlowRunner(flow_of(text), ctx).run()
    assert result.path == ["first", "recover", "second"]
    assert result.outcome == "error"
    assert result.error == "ValueError: again"
    assert result.last_node == "second"
    assert [level for level, _ in ctx.log.find("flow.node_failed")] == ["error", "error"]


def test_an_error_outcome_without_an_edge_ends_the_run() -> None:
    text = "flow: e\nstart: p\nnodes:\n  p: {type: pause, duration: 1s, next: b}\n  b: {type: hangup}\n"
    call = FakeCall(playback=[PlaybackResult(PlaybackStop.ERROR)])
    result = FlowRunner(flow_of(text), make_ctx(call)).run()
    assert (result.outcome, result.path, result.error) == ("error", ["p"], None)


def test_template_errors_are_node_errors() -> None:
    text = (
        'flow: e\nstart: s\nnodes:\n  s: {type: say, text: "{{ vars.nope }}", next: {done: b, error: b}}\n'
        "  b: {type: hangup}\n"
    )
    call = FakeCall()
    ctx = make_ctx(call)
    result = FlowRunner(flow_of(text), ctx).run()
    assert result.path == ["s", "b"]
    assert result.steps[0].outcome == "error"
    assert call.of("speak") == []


def test_flow_vars_fill_only_unset_variables() -> None:
    text = (
        'flow: v\nstart: s\nvars: {a: "1", b: 2}\nnodes:\n'
        '  s: {type: say, text: "{{ vars.a }} {{ vars.b }}", next: h}\n'
        "  h: {type: hangup}\n"
    )
    call = FakeCall()
    ctx = make_ctx(call, vars={"a": "preset"})
    result = FlowRunner(flow_of(text), ctx).run()
    assert call.of("speak")[0]["text"] == "preset 2"
    assert result.vars == {"a": "preset", "b": 2}
    assert result.outcome == "hangup"


MAIN = """\
flow: main
start: set
vars: {shared: from-main}
nodes:
  set: {type: set, vars: {visits: 1}, next: jump}
  jump: {type: goto_flow, flow: billing, next: {error: sorry}}
  sorry: {type: hangup, say: "sorry"}
"""
BILLING = """\
flow: billing
start: hello
vars: {shared: from-billing, own: billing-default}
nodes:
  hello: {type: say, text: "{{ vars.shared }} {{ vars.own }} {{ vars.visits }}", next: back}
  back: {type: goto_flow, flow: main}
"""


def test_goto_flow_shares_vars_and_the_step_budget() -> None:
    flows = {"main": flow_of(MAIN, "main.yaml"), "billing": flow_of(BILLING, "billing.yaml")}
    call = FakeCall()
    ctx = make_ctx(call, flow_loader=flows.__getitem__)
    result = FlowRunner(flows["main"], ctx, step_limit=9).run()
    assert call.of("speak")[0]["text"] == "from-main billing-default 1"
    assert result.outcome == "step_limit"
    assert len(result.steps) == 9
    assert [(s.flow, s.node) for s in result.steps[:5]] == [
        ("main", "set"),
        ("main", "jump"),
        ("billing", "hello"),
        ("billing", "back"),
        ("main", "set"),
    ]
    assert result.steps[1].outcome == "entered"
    assert result.steps[1].detail == {"flow": "billing"}


def test_goto_flow_that_cannot_load_takes_error() -> None:
    def loader(name: str):  # type: ignore[no-untyped-def]
        raise FlowLoaderError(f"no flow {name}")

    call = FakeCall()
    ctx = make_ctx(call, flow_loader=loader)
    result = FlowRunner(flow_of(MAIN), ctx).run()
    assert result.path == ["set", "jump", "sorry"]
    assert result.outcome == "hangup"
    assert ctx.log.find("flow.goto_load_failed")[0][1]["flow"] == "billing"
    no_loader = FlowRunner(flow_of(MAIN), make_ctx(FakeCall())).run()
    assert no_loader.path == ["set", "jump", "sorry"]


def test_call_ended_raised_by_a_hangup_during_goodbye_is_caller_hangup() -> None:
    text = "flow: h\nstart: bye\nnodes:\n  bye: {type: hangup, say: Goodbye}\n"
    call = FakeCall(speak=[CallEnded("gone")])
    result = FlowRunner(flow_of(text), make_ctx(call, log=ListLogger())).run()
    assert result.outcome == "caller_hangup"
    assert call.of("hangup") == []
