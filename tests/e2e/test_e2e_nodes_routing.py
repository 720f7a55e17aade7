"""`transfer` (extension and bridge), `business_hours`, `set`, `branch` and `goto_flow` end to end,
through the simulator dialling into the real server over TCP."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_e2e_nodes_rig import NodeRig

from esl_controller.simulator import BridgeTarget

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
DIAL = "sofia/gateway/carrier/+15550001"


# ---------------------------------------------------------------------------------------------- transfer

def test_transfer_to_an_extension_sets_channel_vars_and_does_not_answer(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-transfer") as rig:
        placed = rig.call([])
    cmds = placed.call.commands()
    assert "sendmsg execute answer" not in cmds
    order = [cmds.index("sendmsg execute set effective_caller_id_name=IVR TestCaller"),
             cmds.index("sendmsg execute set socket_resume=false"),
             cmds.index("sendmsg execute transfer 1001 XML default")]   # the context the call is in
    assert order == sorted(order)
    assert placed.call.state.transferred_to.startswith("1001")
    assert placed.call.state.variables["effective_caller_id_name"] == "IVR TestCaller"
    assert placed.outcome.kind == "transferred"
    assert placed.record.outcome == "transferred"
    assert placed.steps == [("xfer", "transferred")]
    assert placed.step("xfer")["detail"] == {"dialplan": "XML", "context": "default"}


def test_transfer_to_a_target_with_injected_words_is_refused(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-transfer") as rig:
        rig.vars["ext"] = "1001 XML evil-context"
        placed = rig.call([])
    assert placed.executes("transfer") == []
    assert placed.steps == [("xfer", "error"), ("refused", "hangup")]
    assert placed.heard() == ["That extension is not allowed."]
    assert placed.events("flow.transfer_refused")


def bridge_call(tmp_path: Path, mode: str, target: BridgeTarget):  # type: ignore[no-untyped-def]
    with NodeRig(tmp_path, "nodes-bridge") as rig:
        rig.vars["mode"] = mode
        return rig.call([], bridge_targets={DIAL: target})


def test_bridge_answered_then_the_far_end_hangs_up_ends_the_call(tmp_path: Path) -> None:
    placed = bridge_call(tmp_path, "stay", BridgeTarget(answer=True, ring_seconds=1, talk_seconds=2))
    assert placed.executes("bridge") == [DIAL]
    cmds = placed.call.commands()
    for setting in ("call_timeout=20", "socket_resume=false", "hangup_after_bridge=true"):
        assert cmds.index(f"sendmsg execute set {setting}") < cmds.index(f"sendmsg execute bridge {DIAL}")
    (attempt,) = placed.call.state.bridges
    assert attempt.answered and attempt.hangup_cause == "NORMAL_CLEARING"
    assert placed.outcome.kind == "bridged"
    assert placed.steps == [("mode", "default"), ("bridge_stay", "bridged")]
    assert placed.step("bridge_stay")["detail"]["answered"] is True
    assert "sendmsg execute answer" not in cmds                     # the far end answers, not the IVR


def test_bridge_answered_then_hung_up_is_recorded_as_bridged(tmp_path: Path) -> None:
    placed = bridge_call(tmp_path, "stay", BridgeTarget(answer=True, ring_seconds=1, talk_seconds=2))
    assert placed.record.outcome == "bridged"


def test_bridge_answered_without_hangup_after_bridge_comes_back_to_the_flow(tmp_path: Path) -> None:
    placed = bridge_call(tmp_path, "back", BridgeTarget(answer=True, ring_seconds=1, talk_seconds=2))
    assert "sendmsg execute set hangup_after_bridge=false" in placed.call.commands()
    assert placed.steps == [("mode", "back"), ("bridge_back", "bridged"), ("welcome_back", "hangup")]
    assert placed.heard() == ["Welcome back to the test line."]
    assert placed.record.outcome == "hangup"
    assert placed.outcome.kind == "controller_hangup"


@pytest.mark.parametrize(("cause", "outcome", "said"), [
    ("USER_BUSY", "busy", "The line is busy."),
    ("NO_ANSWER", "no_answer", "Nobody answered."),
    ("UNALLOCATED_NUMBER", "failed", "The call failed."),
])
def test_bridge_not_answered_goes_on_in_the_flow(tmp_path: Path, cause: str, outcome: str, said: str) -> None:
    placed = bridge_call(tmp_path, "stay", BridgeTarget(answer=False, ring_seconds=1, fail_cause=cause))
    (attempt,) = placed.call.state.bridges
    assert not attempt.answered and attempt.disposition == cause
    assert placed.steps == [("mode", "default"), ("bridge_stay", outcome), (outcome, "hangup")]
    assert placed.heard() == [said]
    assert placed.step("bridge_stay")["detail"] == {"answered": False, "cause": cause}
    assert placed.record.outcome == "hangup"


# ---------------------------------------------------------------------------------------------- business hours

@pytest.mark.parametrize(("local", "expected"), [
    ("2026-11-25 10:00", "open"),          # Wednesday morning
    ("2026-11-25 12:30", "closed"),        # lunch break
    ("2026-11-25 20:00", "closed"),        # evening
    ("2026-11-28 09:30", "open"),          # Saturday morning
    ("2026-11-29 10:00", "closed"),        # Sunday
    ("2026-12-25 10:00", "closed"),        # holiday (a Friday)
    ("2026-07-01 13:30", "closed"),        # closure (a Wednesday)
])
def test_business_hours_with_an_injected_clock(tmp_path: Path, local: str, expected: str) -> None:
    when = dt.datetime.fromisoformat(local).replace(tzinfo=SAO_PAULO).astimezone(dt.UTC)
    with NodeRig(tmp_path, "nodes-hours") as rig:
        rig.services["clock"] = lambda: when
        placed = rig.call([])
    assert placed.steps == [("hours", expected), (f"{expected}_msg", "hangup")]
    said = f"We are open. It is {local[-5:]}." if expected == "open" else "We are closed."
    assert placed.heard() == [said]


# ---------------------------------------------------------------------------------------------- set and branch

@pytest.mark.parametrize(("number", "probe", "steps", "said"), [
    ("9123", None, [("route", "rich"), ("rich_msg", "hangup")],
     "Hi TestCaller, welcome back, valued caller number 4."),
    ("5551234", None, [("route", "if_2"), ("local_msg", "hangup")], "Hi TestCaller, a local caller."),
    ("777", "yes", [("route", "probed"), ("probe_msg", "hangup")], "Probe matched."),
    ("777", "no", [("route", "default"), ("other_msg", "hangup")], "Hello stranger."),
])
def test_set_then_branch(tmp_path: Path, number: str, probe: str | None, steps: list[tuple[str, str]],
                         said: str) -> None:
    with NodeRig(tmp_path, "nodes-logic") as rig:
        if probe is not None:
            rig.vars["probe"] = probe
        placed = rig.call([], caller_number=number)
    assert placed.steps == [("remember", "done"), *steps]
    assert placed.heard() == [said]
    variables = placed.record.vars
    assert (variables["greeting"], variables["vip"], variables["visits"]) == ("Hi TestCaller", True, 3)
    assert variables["balance"] == ("2000" if number.startswith("9") else "10")
    assert placed.step("remember")["detail"]["set"] == ["balance", "greeting", "vip", "visits"]


def test_branch_on_a_variable_that_is_not_set_takes_error(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-logic") as rig:
        placed = rig.call([], caller_number="777", errors_expected=True)
    assert placed.steps == [("remember", "done"), ("route", "error"), ("broken", "hangup")]
    assert placed.heard() == ["Something is not set."]
    assert placed.step("route")["detail"]["error"] == "FlowTemplateError"
    assert placed.record.outcome == "hangup"


# ---------------------------------------------------------------------------------------------- goto_flow

def test_goto_flow_continues_in_the_other_flow_sharing_variables(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-goto-a") as rig:
        placed = rig.call([])
    assert [(s["flow"], s["node"], s["outcome"]) for s in placed.record.path] == [
        ("nodes-goto-a", "remember", "done"), ("nodes-goto-a", "pick", "default"),
        ("nodes-goto-a", "jump", "entered"), ("nodes-goto-b", "greet", "done"), ("nodes-goto-b", "bye", "hangup")]
    assert placed.heard() == ["In flow b: from-a and only-b."]
    assert placed.record.flow == "nodes-goto-a"
    assert placed.record.outcome == "hangup"


def test_goto_a_flow_that_does_not_exist_takes_error(tmp_path: Path) -> None:
    with NodeRig(tmp_path, "nodes-goto-a") as rig:
        rig.vars["target"] = "nowhere"
        placed = rig.call([])
    assert placed.steps == [("remember", "done"), ("pick", "missing"), ("jump_nowhere", "error"),
                            ("no_flow", "hangup")]
    assert placed.heard() == ["No such flow."]
    assert placed.events("flow.goto_load_failed")
