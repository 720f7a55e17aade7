"""The caller hangs up inside every node type: the call record's outcome is ``caller_hangup``, no
error is logged, and no greenlet is left behind.

Nodes that drive FreeSWITCH are hung up on the moment their first command arrives (before
FreeSWITCH even answers it) and, for the media ones, while their application runs.  Nodes that
send FreeSWITCH nothing (set, branch, business_hours, goto_flow) are hung up on from inside their
own work (their use of the flow clock or flow loader), the webhook while its request is in flight.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from test_e2e_nodes_rig import (
    START_UP_COMMANDS,
    HangupInNode,
    HookServer,
    NodeRig,
    Placed,
    hangup_on_command,
    live_greenlets,
)

from esl_controller.simulator import BridgeTarget, Hangup, Wait, WaitForApp

MARKER = "Marker before the node."
BRIDGES = {"sofia/gateway/carrier/+15550001": BridgeTarget(answer=True, ring_seconds=1, talk_seconds=None)}

# node type -> the first command it sends FreeSWITCH (behind the marker prompt, the call answered)
FIRST_COMMAND = {
    "say": "sendmsg execute speak flite|kal|Inside the say node",
    "play": "sendmsg execute playback ",
    "pause": "sendmsg execute playback silence_stream://5000",
    "menu": "sendmsg execute flush_dtmf",
    "collect": "sendmsg execute flush_dtmf",
    "record": "sendmsg execute speak flite|kal|Leave a message.",
    "transfer": "sendmsg execute set socket_resume=false",
    "bridge": "sendmsg execute set call_timeout=30",
    "hangup": "sendmsg execute speak flite|kal|Goodbye from inside",
}
# case -> (the application the node runs, which run of it, simulated seconds into it) to hang up then
RUNNING_APP = {
    "say": ("speak", 2, 0.5), "play": ("playback", 1, 0.5), "pause": ("playback", 1, 0.5),
    "menu": ("play_and_get_digits", 1, 0.5), "collect": ("play_and_get_digits", 1, 0.5),
    "record": ("record", 1, 0.5), "hangup": ("speak", 2, 0.5),
    "bridge-ringing": ("bridge", 1, 0.5), "bridge-talking": ("bridge", 1, 2.0),
}
# What the path ends with when the caller hangs up while a bridge rings (the bridge reports
# ORIGINATOR_CANCEL: the node takes no_answer and the next node meets the hangup) or talks (the
# bridge was answered: `bridged` ends the flow).
BRIDGE_TAIL = {
    "bridge-ringing": [("t_bridge", "no_answer"), ("after", "caller_hangup")],
    "bridge-talking": [("t_bridge", "bridged")],
}
SILENT_NODES = ("set", "branch", "business_hours", "goto_flow")


@pytest.fixture()
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def assert_clean_caller_hangup(placed: Placed, *, unwound: bool = True, outcome: str = "caller_hangup") -> None:
    """Recorded as a caller hangup (or as ``outcome``: a caller ending an answered bridge is a
    ``bridged`` call), ended by the caller, nothing logged as an error (`NodeRig.call` checks
    that), and the flow unwound by the hangup (`unwound`) rather than by an outcome."""
    assert placed.record.outcome == outcome, placed.steps
    assert placed.call.state.hangup_by == "caller"
    assert placed.outcome.kind in ("caller_hangup", "bridged")
    assert any(e["event"] == "call.end" for e in placed.logs)
    if unwound:
        assert placed.steps[-1][1] == "caller_hangup"
        assert placed.events("flow.caller_hangup")


def hang_up_at_first_command(rig: NodeRig, node: str) -> Placed:
    rig.vars["target"] = node
    hook = hangup_on_command(rig, after=MARKER)
    placed = rig.call([], on_command=hook, bridge_targets=BRIDGES)
    seen = hook.seen  # type: ignore[attr-defined]
    assert seen[seen.index(f"sendmsg execute speak flite|kal|{MARKER}") + 1].startswith(FIRST_COMMAND[node])
    return placed


@pytest.mark.parametrize("node", sorted(FIRST_COMMAND))
def test_hangup_at_the_first_command_of_the_node(tmp_path: Path, node: str) -> None:
    with NodeRig(tmp_path, "nodes-inside") as rig:
        placed = hang_up_at_first_command(rig, node)
    assert_clean_caller_hangup(placed)
    assert placed.steps[-1] == (f"t_{node}", "caller_hangup")


def hang_up_while_running(rig: NodeRig, case: str) -> Placed:
    app, nth, after = RUNNING_APP[case]
    rig.vars["target"] = case.split("-")[0]
    return rig.call([WaitForApp(app, nth=nth), Wait(after), Hangup()], bridge_targets=BRIDGES)


@pytest.mark.parametrize("case", sorted(RUNNING_APP))
def test_hangup_while_the_nodes_application_runs(tmp_path: Path, case: str) -> None:
    with NodeRig(tmp_path, "nodes-inside") as rig:
        placed = hang_up_while_running(rig, case)
    if case in BRIDGE_TAIL:
        talking = case == "bridge-talking"
        assert_clean_caller_hangup(placed, unwound=not talking, outcome="bridged" if talking else "caller_hangup")
        assert placed.steps[-len(BRIDGE_TAIL[case]):] == BRIDGE_TAIL[case]
        assert placed.call.state.bridges[0].answered is (case == "bridge-talking")
        return
    assert_clean_caller_hangup(placed)
    assert placed.steps[-1] == (f"t_{case}", "caller_hangup")
    if case in ("say", "play", "pause", "hangup"):
        assert placed.call.state.heard[-1].stop == "hangup"             # cut by the hangup, not finished
    elif case == "record":
        assert placed.call.state.recordings[0].stop == "hangup"


@pytest.mark.parametrize("node", SILENT_NODES)
def test_hangup_inside_a_node_that_sends_freeswitch_nothing(tmp_path: Path, node: str) -> None:
    with NodeRig(tmp_path, "nodes-inside") as rig:
        rig.vars["target"] = node
        inside = HangupInNode(rig, f"t_{node}")
        placed = rig.call([])
    assert inside.fired
    assert_clean_caller_hangup(placed)
    # The node finished its own work; the next node met the hangup.
    nodes = [n for n, _ in placed.steps]
    assert nodes[nodes.index(f"t_{node}") + 1:] == (["greet"] if node == "goto_flow" else ["after"])


def test_hangup_while_a_webhook_request_is_in_flight(tmp_path: Path, hook: HookServer) -> None:
    with NodeRig(tmp_path, "nodes-inside") as rig:
        rig.services["allowed_url_hosts"] = frozenset({"127.0.0.1"})
        rig.vars.update(target="webhook", hook=hook.url)

        def hang_up() -> None:
            for call in list(rig.sim.calls.values()):
                call.hangup()
            assert rig.contexts[-1].call.gone_event.wait(timeout=5)   # type: ignore[attr-defined]

        hook.on_hangup = hang_up
        placed = rig.call([])
    assert [r.path for r in hook.requests] == ["/hangup"]
    assert_clean_caller_hangup(placed)
    assert placed.steps[-2:] == [("t_webhook", "ok"), ("after", "caller_hangup")]


@pytest.mark.parametrize("flow", ["nodes-say", "nodes-play", "nodes-pause", "nodes-menu", "nodes-collect",
                                  "nodes-record", "nodes-hangup", "nodes-transfer"])
def test_hangup_at_the_first_command_of_a_flows_first_node(tmp_path: Path, flow: str) -> None:
    with NodeRig(tmp_path, flow) as rig:
        hook = hangup_on_command(rig, index=START_UP_COMMANDS)
        placed = rig.call([], on_command=hook)
    first = hook.seen[START_UP_COMMANDS]  # type: ignore[attr-defined]
    assert first == ("sendmsg execute set effective_caller_id_name=IVR TestCaller" if flow == "nodes-transfer"
                     else "sendmsg execute answer")
    assert_clean_caller_hangup(placed)
    assert len(placed.steps) == 1


def test_no_greenlet_outlives_the_calls(tmp_path: Path, hook: HookServer) -> None:
    with NodeRig(tmp_path, "nodes-inside") as rig:
        rig.services["allowed_url_hosts"] = frozenset({"127.0.0.1"})
        rig.vars["hook"] = hook.url
        rig.call([])                                        # warm up: a whole call
        gevent.sleep(0.2)
        baseline = live_greenlets()
        for node in sorted(FIRST_COMMAND):
            hang_up_at_first_command(rig, node)
        for case in sorted(RUNNING_APP):
            hang_up_while_running(rig, case)
        for node in SILENT_NODES:
            rig.vars["target"] = node
            HangupInNode(rig, f"t_{node}")
            rig.call([])
        gevent.sleep(0.2)
        assert live_greenlets() <= baseline + 2, "greenlets leaked across calls"
        assert all(r.outcome in ("caller_hangup", "bridged") for r in rig.controller.records[1:])
