"""Node types other than menu/collect/record/webhook/business_hours: say, play, pause, transfer,
hangup, set, branch — every outcome — and CallEnded inside every node that touches the call."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from flows_fakes import FakeCall, FakeSynthesizer, cut_by, digits, make_ctx

from ivr_flows import FlowRunner, load_flow_text
from ivr_flows.call import BridgeResult, PlaybackResult, PlaybackStop, RecordResult, RecordStop

PROMPTS = Path(__file__).parent / "prompts"


def run(text: str, call: FakeCall, **ctx_options: object):  # type: ignore[no-untyped-def]
    flow = load_flow_text(text, "t.yaml")
    ctx = make_ctx(call, **ctx_options)  # type: ignore[arg-type]
    return FlowRunner(flow, ctx).run(), ctx


def one(node: str, tail: str = "") -> str:
    """A flow whose start node is `node` (YAML flow mapping), then `end` (a hangup)."""
    return f"flow: one\nstart: n\nnodes:\n  n: {node}\n  end: {{type: hangup}}\n{tail}"


# -- say ---------------------------------------------------------------------------------------
def test_say_without_synthesizer_uses_flite_speak() -> None:
    call = FakeCall()
    result, _ = run(one('{type: say, text: "Hello {{ caller.name }} from {{ call.domain_name }}", next: end}'), call)
    assert call.of("speak") == [{"text": "Hello Ada from demo.example.com", "terminators": ""}]
    assert result.steps[0].outcome == "done"


def test_say_with_synthesizer_plays_its_wav(tmp_path: Path) -> None:
    call = FakeCall()
    synth = FakeSynthesizer(tmp_path)
    run(
        one('{type: say, text: "Olá", voice: faber, next: end}').replace("flow: one", "flow: one\nlanguage: pt-BR"),
        call,
        synthesizer=synth,
    )
    assert synth.requests == [("Olá", "pt-BR", "faber")]
    assert call.of("playback") == [{"path": str(tmp_path / "tts_1.wav"), "terminators": ""}]
    assert call.of("speak") == []


def test_say_falls_back_to_speak_when_the_synthesizer_fails(tmp_path: Path) -> None:
    call = FakeCall()
    result, ctx = run(one('{type: say, text: "Hi", next: end}'), call, synthesizer=FakeSynthesizer(tmp_path, fail=True))
    assert call.names()[:2] == ["answer", "speak"]
    assert result.steps[0].outcome == "done"
    assert ctx.log.find("flow.tts_failed")[0][1]["fallback"] == "speak"


def test_say_falls_back_to_speak_when_freeswitch_cannot_play_the_wav(tmp_path: Path) -> None:
    call = FakeCall(playback=[PlaybackResult(PlaybackStop.NOT_FOUND)])
    result, _ = run(one('{type: say, text: "Hi", next: end}'), call, synthesizer=FakeSynthesizer(tmp_path))
    assert call.names()[:3] == ["answer", "playback", "speak"]
    assert result.steps[0].outcome == "done"


def test_say_error_and_barge_in() -> None:
    call = FakeCall(speak=[PlaybackResult(PlaybackStop.ERROR)])
    result, _ = run(one('{type: say, text: "Hi", barge_in: true, next: {done: end, error: end}}'), call)
    assert result.steps[0].outcome == "error"
    assert call.of("speak")[0]["terminators"] == "0123456789*#"


# -- play --------------------------------------------------------------------------------------
def test_play_a_prompt_file_under_the_prompt_folder() -> None:
    call = FakeCall()
    result, _ = run(one("{type: play, file: en/menu.wav, barge_in: true, next: end}"), call, prompt_dir=PROMPTS)
    assert call.of("playback") == [
        {"path": str((PROMPTS / "en" / "menu.wav").resolve()), "terminators": "0123456789*#"}
    ]
    assert result.steps[0].outcome == "done"


def test_play_refuses_a_templated_path_that_escapes_at_run() -> None:
    call = FakeCall()
    result, _ = run(
        one('{type: play, file: "{{ vars.name }}", next: {done: end, error: end}}'),
        call,
        prompt_dir=PROMPTS,
        vars={"name": "../../../etc/passwd"},
    )
    assert result.steps[0].outcome == "error"
    assert result.steps[0].detail == {"error": "PromptPathError"}
    assert call.of("playback") == []


def test_play_refuses_a_symlink_out_of_the_folder_at_run(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (tmp_path / "outside.wav").write_bytes(b"RIFF")
    call = FakeCall()
    result, _ = run(
        one('{type: play, file: "{{ vars.name }}", next: {done: end, error: end}}'),
        call,
        prompt_dir=prompts,
        vars={"name": "link.wav"},
    )
    assert result.steps[0].outcome == "done"  # no link yet: a plain (missing) file inside is FreeSWITCH's business
    os.symlink(tmp_path / "outside.wav", prompts / "link.wav")
    call = FakeCall()
    result, _ = run(
        one('{type: play, file: "{{ vars.name }}", next: {done: end, error: end}}'),
        call,
        prompt_dir=prompts,
        vars={"name": "link.wav"},
    )
    assert result.steps[0].outcome == "error"
    assert call.of("playback") == []


def test_play_a_url_only_on_allowed_hosts() -> None:
    node = '{type: play, url: "https://media.example.com/a.wav", next: {done: end, error: end}}'
    call = FakeCall()
    result, _ = run(one(node), call, allowed_url_hosts=frozenset({"media.example.com"}))
    assert call.of("playback")[0]["path"] == "http_cache://https://media.example.com/a.wav"
    assert result.steps[0].outcome == "done"
    call = FakeCall()
    result, _ = run(one(node), call)
    assert result.steps[0].outcome == "error"
    assert call.of("playback") == []


def test_play_file_not_found_is_error() -> None:
    call = FakeCall(playback=[PlaybackResult(PlaybackStop.NOT_FOUND)])
    result, _ = run(one("{type: play, file: welcome.wav, next: {done: end, error: end}}"), call, prompt_dir=PROMPTS)
    assert result.steps[0].outcome == "error"


def test_play_needs_exactly_one_source() -> None:
    with pytest.raises(Exception, match="exactly one of 'file' or 'url'"):
        load_flow_text(one("{type: play, next: end}"), "t.yaml")


# -- pause -------------------------------------------------------------------------------------
def test_pause_plays_silence_for_the_duration() -> None:
    call = FakeCall()
    result, _ = run(one("{type: pause, duration: 1500ms, next: end}"), call)
    assert call.of("playback") == [{"path": "silence_stream://1500", "terminators": ""}]
    assert result.steps[0].outcome == "done"


# -- transfer ----------------------------------------------------------------------------------
def test_transfer_to_an_extension_in_the_calls_own_context() -> None:
    call = FakeCall()
    result, _ = run(
        one('{type: transfer, to: "{{ vars.ext }}", channel_vars: {origination_note: ivr}, next: {error: end}}'),
        call,
        vars={"ext": "1001"},
    )
    assert call.of("set_variable") == [{"name": "origination_note", "value": "ivr"}]
    # The context the call is in (FreeSWITCH's Caller-Context), not a context named after the domain.
    assert call.of("transfer") == [{"extension": "1001", "dialplan": "XML", "context": "public"}]
    assert (result.outcome, result.steps[0].outcome) == ("transferred", "transferred")


def test_transfer_with_explicit_dialplan_and_context_and_default_context() -> None:
    call = FakeCall()
    run(one('{type: transfer, to: "1002", dialplan: XML, context: public, next: {error: end}}'), call)
    assert call.of("transfer")[0]["context"] == "public"
    call = FakeCall(context="")
    run(one('{type: transfer, to: "1002", next: {error: end}}'), call)
    assert call.of("transfer")[0]["context"] == "default"
    call = FakeCall()
    run(one('{type: transfer, to: "1002", next: {error: end}}'), call, transfer_context="people")
    assert call.of("transfer")[0]["context"] == "people"     # the tenant's transfer_context wins


@pytest.mark.parametrize("target", ["1001 XML evil", "1001\nhangup", "{origination_caller_id=1}1001", ""])
def test_transfer_refuses_injected_extensions(target: str) -> None:
    call = FakeCall()
    result, ctx = run(one('{type: transfer, to: "{{ vars.t }}", next: {error: end}}'), call, vars={"t": target})
    assert result.steps[0].outcome == "error"
    assert call.of("transfer") == []
    assert ctx.log.find("flow.transfer_refused")


BRIDGE = (
    '{type: transfer, bridge: "sofia/gateway/carrier/{{ vars.number }}", ring_timeout: 20s, '
    "next: {no_answer: vm, busy: vm, failed: vm}}"
)
VM = "  vm: {type: say, text: voicemail, next: end}\n"


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (BridgeResult(True, "SUCCESS"), "bridged"),
        (BridgeResult(False, "USER_BUSY", "USER_BUSY"), "busy"),
        (BridgeResult(False, "NO_ANSWER", "NO_ANSWER"), "no_answer"),
        (BridgeResult(False, "", "ALLOTTED_TIMEOUT"), "no_answer"),
        (BridgeResult(False, "CALL_REJECTED"), "busy"),
        (BridgeResult(False, "NO_ROUTE_DESTINATION", "NO_ROUTE_DESTINATION"), "failed"),
        (BridgeResult(False), "failed"),
    ],
)
def test_bridge_outcomes(result: BridgeResult, outcome: str) -> None:
    call = FakeCall(bridge=[result])
    run_result, _ = run(one(BRIDGE, VM), call, vars={"number": "+15551234567"})
    assert call.of("set_variable") == [{"name": "call_timeout", "value": "20"}]
    assert call.of("bridge") == [
        {"target": "sofia/gateway/carrier/+15551234567", "timeout": None, "hangup_after_bridge": True}
    ]
    assert run_result.steps[0].outcome == outcome
    if outcome == "bridged":
        assert run_result.outcome == "bridged" and run_result.path == ["n"]
    else:
        assert run_result.path == ["n", "vm", "end"]


def test_bridge_that_comes_back_continues_the_flow() -> None:
    node = '{type: transfer, bridge: "user/1001@demo", hangup_after_bridge: false, next: end}'
    call = FakeCall()
    result, _ = run(one(node), call)
    assert call.of("bridge")[0]["hangup_after_bridge"] is False
    assert result.path == ["n", "end"]
    with pytest.raises(Exception, match="outcome 'bridged' has no edge"):
        load_flow_text(
            one(
                '{type: transfer, bridge: "user/1001", hangup_after_bridge: false, '
                "next: {busy: end, no_answer: end, failed: end}}"
            ),
            "t.yaml",
        )


def test_bridge_refuses_injected_targets() -> None:
    call = FakeCall()
    result, _ = run(
        one(BRIDGE.replace("next: {", "next: {error: end, "), VM), call, vars={"number": "1,sofia/gateway/other/999"}
    )
    assert result.steps[0].outcome == "error"
    assert call.of("bridge") == []


def test_transfer_needs_exactly_one_target() -> None:
    with pytest.raises(Exception, match="exactly one of 'to'"):
        load_flow_text(one('{type: transfer, to: "1", bridge: "user/1"}'), "t.yaml")


# -- hangup ------------------------------------------------------------------------------------
def test_hangup_says_goodbye_then_hangs_up_with_the_cause() -> None:
    call = FakeCall()
    text = 'flow: h\nstart: bye\nnodes:\n  bye: {type: hangup, say: "Bye {{ caller.name }}", cause: USER_BUSY}\n'
    result, _ = run(text, call)
    assert call.names() == ["answer", "speak", "hangup"]
    assert call.of("hangup") == [{"cause": "USER_BUSY"}]
    assert (result.outcome, result.steps[0].detail) == ("hangup", {"cause": "USER_BUSY"})


def test_hangup_still_hangs_up_when_the_goodbye_fails() -> None:
    call = FakeCall(speak=[RuntimeError("tts")])
    result, ctx = run("flow: h\nstart: bye\nnodes:\n  bye: {type: hangup, say: Bye}\n", call)
    assert call.of("hangup") == [{"cause": "NORMAL_CLEARING"}]
    assert result.outcome == "hangup"
    assert ctx.log.find("flow.goodbye_failed")


# -- set and branch ----------------------------------------------------------------------------
def test_set_assigns_templates_and_literals() -> None:
    text = one('{type: set, vars: {n: 3, ok: true, ratio: 0.5, who: "{{ caller.number }}", none: null}, next: end}')
    result, _ = run(text, FakeCall())
    assert result.vars == {"n": 3, "ok": True, "ratio": 0.5, "who": "+15550001111", "none": None}
    assert result.steps[0].detail == {"set": ["n", "none", "ok", "ratio", "who"]}


BRANCH = """\
flow: b
start: route
timezone: America/New_York
nodes:
  route:
    type: branch
    conditions:
      - {name: vip, if: "vars.balance | float > 1000", next: vip}
      - {if: "caller.number.startswith('+55')", next: brazil}
      - {if: "now.hour < 12", next: morning}
      - {if: "vars.account is match('^9[0-9]+$')", next: staff}
    default: other
    next: {error: broken}
  vip: {type: hangup, cause: NORMAL_CLEARING}
  brazil: {type: hangup}
  morning: {type: hangup}
  staff: {type: hangup}
  other: {type: hangup}
  broken: {type: hangup}
"""


@pytest.mark.parametrize(
    ("variables", "caller", "utc_hour", "node", "outcome"),
    [
        ({"balance": "1500.50", "account": "1"}, "+1555", 18, "vip", "vip"),
        ({"balance": "10", "account": "1"}, "+5511999", 18, "brazil", "if_2"),
        ({"balance": "10", "account": "1"}, "+1555", 15, "morning", "if_3"),  # 11:00 in New York (EDT)
        ({"balance": "10", "account": "98765"}, "+1555", 18, "staff", "if_4"),
        ({"balance": "10", "account": "1"}, "+1555", 18, "other", "default"),
        ({"account": "1"}, "+1555", 18, "broken", "error"),  # vars.balance is not set
    ],
)
def test_branch_conditions_in_order(
    variables: dict[str, str], caller: str, utc_hour: int, node: str, outcome: str
) -> None:
    call = FakeCall(caller=caller)
    at = dt.datetime(2026, 6, 10, utc_hour, 0, tzinfo=dt.UTC)
    result, _ = run(BRANCH, call, vars=dict(variables), at=at)
    assert result.path == ["route", node]
    assert result.steps[0].outcome == outcome


def test_branch_condition_names_must_be_unique() -> None:
    text = BRANCH.replace('{if: "now.hour < 12"', '{name: vip, if: "now.hour < 12"')
    with pytest.raises(Exception, match="two conditions are named 'vip'"):
        load_flow_text(text, "t.yaml")


# -- CallEnded inside every node that talks to the call ---------------------------------------
@pytest.mark.parametrize(
    ("node", "method"),
    [
        ("{type: say, text: hi, next: end}", "speak"),
        ("{type: play, file: welcome.wav, next: end}", "playback"),
        ("{type: pause, duration: 1s, next: end}", "playback"),
        ('{type: menu, prompt: hi, options: {"1": end}, next: {failure: end}}', "flush_dtmf"),
        ('{type: menu, prompt: hi, options: {"1": end}, next: {failure: end}}', "play_and_get_digits"),
        ("{type: collect, prompt: hi, var: x, next: end}", "play_and_get_digits"),
        ("{type: collect, prompt: hi, var: x, confirm: true, next: end}", "speak"),
        ("{type: record, prompt: hi, next: end}", "playback"),
        ("{type: record, next: end}", "record"),
        ('{type: transfer, to: "1001", next: {error: end}}', "transfer"),
        ('{type: transfer, to: "1001", channel_vars: {a: b}, next: {error: end}}', "set_variable"),
        ('{type: transfer, bridge: "user/1001", next: {busy: end, no_answer: end, failed: end}}', "bridge"),
        ("{type: hangup, say: bye, next: {error: end}}", "speak"),
        ("{type: hangup, next: {error: end}}", "hangup"),
    ],
)
def test_call_ended_inside_a_node_ends_the_run_as_caller_hangup(node: str, method: str, tmp_path: Path) -> None:
    call = FakeCall(end_at=(method, 1), play_and_get_digits=[digits("123")])
    result, ctx = run(one(node), call, prompt_dir=PROMPTS, recordings_dir=tmp_path)
    assert result.outcome == "caller_hangup"
    assert result.path == ["n"]
    assert result.steps[0].outcome == "caller_hangup"
    assert call.names()[-1] == method
    assert ctx.log.find("flow.caller_hangup")[0][0] == "info"


def test_call_ended_in_the_node_after_a_silent_node() -> None:
    text = one("{type: set, vars: {a: 1}, next: talk}", "  talk: {type: say, text: hi, next: end}\n")
    call = FakeCall(end_at=("speak", 1))
    result, _ = run(text, call)
    assert result.path == ["n", "talk"]
    assert result.outcome == "caller_hangup"


def test_keys_pressed_during_a_say_reach_the_next_menu() -> None:
    text = one(
        '{type: say, text: "Welcome", barge_in: true, next: m}',
        '  m: {type: menu, prompt: "Press 1", options: {"1": end}, next: {failure: end}}\n',
    )
    call = FakeCall(speak=[cut_by("1")], typeahead="1")
    result, _ = run(text, call)
    assert result.path == ["n", "m", "end"]
    assert call.of("play_and_get_digits") == []


def test_record_result_helpers_exist() -> None:
    assert RecordResult("x", 1, RecordStop.SILENCE).path == "x"


def test_the_first_media_node_answers_once_and_transfers_do_not() -> None:
    text = one('{type: say, text: one, next: two}', "  two: {type: say, text: two, next: end}\n")
    call = FakeCall()
    run(text, call)
    assert call.names() == ["answer", "speak", "speak", "hangup"]
    call = FakeCall()
    run(one('{type: transfer, to: "1001", next: {error: end}}'), call)
    assert call.names() == ["transfer"]
    call = FakeCall()
    run(text, call, answered=True)  # the controller answered already
    assert call.names() == ["speak", "speak", "hangup"]


def test_caller_gone_before_the_answer() -> None:
    call = FakeCall(end_at=("answer", 1))
    result, _ = run(one("{type: say, text: hi, next: end}"), call)
    assert (result.outcome, result.path) == ("caller_hangup", ["n"])
