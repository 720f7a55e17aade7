"""Transfers on the real FreeSWITCH: the example flows reach their people in both dialplan layouts,
and a transfer FreeSWITCH cannot route is recorded as what it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import gevent
import pytest

from tests.support.controllers import REPO, TENANT_NAME, InProcessController, product_dialplan
from tests.support.freeswitch import FreeSwitch

EXAMPLES = REPO / "examples" / "flows"

# The FusionPBX layout keeps people in the tenant's own context: a stand-in for them there.
TENANT_PEOPLE = """
    <extension name="people">
      <condition field="destination_number" expression="^(1\\d\\d\\d)$">
        <action application="answer"/>
        <action application="set" data="agent=$1"/>
        <action application="playback" data="tone_stream://%(1000,4000,440);loops=-1"/>
      </condition>
    </extension>
"""


@pytest.fixture()
def demo(tmp_path: Path):
    controller = InProcessController(tmp_path, EXAMPLES, default_flow="demo-main")
    yield controller
    controller.stop()


def test_the_demo_menu_transfers_the_caller_to_sales_in_the_calls_own_context(fs: FreeSwitch, demo) -> None:
    fs.install_dialplan("ivr", product_dialplan([demo.target]))
    caller = fs.call("5000")
    caller.wait_app("play_and_get_digits", timeout=30)
    caller.press("1")
    reached = caller.wait_app("set", data="agent=1001", timeout=15)
    assert reached.get("Caller-Context") == "default"
    assert ("transfer", "1001 XML default") in caller.executed()
    (record,) = demo.wait_records(1)
    assert record.outcome == "transferred"
    assert not caller.hung_up()          # the caller is talking to sales, not dropped


def test_the_fusionpbx_layout_keeps_the_call_in_the_tenants_context(fs: FreeSwitch, demo) -> None:
    xml = product_dialplan([demo.target], layout="fusionpbx").replace("</context>", TENANT_PEOPLE + "</context>")
    fs.install_dialplan("tenant-a", xml, layout="tenants")
    caller = fs.call("5000", context=TENANT_NAME)
    caller.wait_app("play_and_get_digits", timeout=30)
    caller.press("2")
    reached = caller.wait_app("set", data="agent=1002", timeout=15)
    assert reached.get("Caller-Context") == TENANT_NAME
    (record,) = demo.wait_records(1)
    assert record.outcome == "transferred"


def test_a_transfer_freeswitch_cannot_route_is_recorded_as_failed(fs: FreeSwitch, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "nowhere.yaml").write_text(
        "flow: nowhere\nstart: xfer\nnodes:\n"
        "  xfer: {type: transfer, to: '1001', context: no-such-context}\n")
    controller = InProcessController(tmp_path, flows, default_flow="nowhere")
    try:
        fs.install_dialplan("ivr", product_dialplan([controller.target]))
        caller = fs.call("5000")
        hangup = caller.wait_hangup(timeout=20)
        assert hangup.get("Hangup-Cause") == "NO_ROUTE_DESTINATION"
        (record,) = controller.wait_records(1)
    finally:
        controller.stop()
    assert record.outcome == "transfer_failed"
    assert record.hangup_cause == "NO_ROUTE_DESTINATION"


def test_the_tenants_transfer_context_overrides_the_calls(fs: FreeSwitch, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "flows")
    people = TENANT_PEOPLE.strip()
    fs.install_dialplan("people", f'<include>\n<context name="people">\n{people}\n</context>\n</include>\n',
                        layout="tenants")
    controller = InProcessController(tmp_path, tmp_path / "flows", default_flow="demo-main")
    controller.controller.routing.transfer_context = "people"   # what `ivr serve --transfer-context` sets
    try:
        fs.install_dialplan("ivr", product_dialplan([controller.target]))
        caller = fs.call("5000")
        caller.wait_app("play_and_get_digits", timeout=30)
        caller.press("1")
        reached = caller.wait_app("set", data="agent=1001", timeout=15)
        assert reached.get("Caller-Context") == "people"
        (record,) = controller.wait_records(1)
    finally:
        controller.stop()
    assert record.outcome == "transferred"


BRIDGES = """
flow: bridges
start: person
nodes:
  person:
    type: transfer
    bridge: "loopback/{{ vars.who }}/{{ vars.ctx }}"
    ring_timeout: 5s
    hangup_after_bridge: false
    next: {bridged: after, no_answer: after, busy: after, failed: after}
  after: {type: hangup, say: "Thank you."}
"""


def bridges_flow(who: str, context: str) -> str:
    return BRIDGES.replace("start: person", f"start: person\nvars: {{who: '{who}', ctx: {context}}}")


@pytest.mark.parametrize("layout", ["plain", "fusionpbx"])
def test_a_bridge_to_a_person_holds_and_returns_to_the_flow_when_they_hang_up(fs: FreeSwitch, tmp_path: Path,
                                                                               layout: str) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    ctx = "default" if layout == "plain" else TENANT_NAME
    (flows / "bridges.yaml").write_text(bridges_flow("1001", ctx))
    controller = InProcessController(tmp_path, flows, default_flow="bridges")
    try:
        if layout == "plain":
            fs.install_dialplan("ivr", product_dialplan([controller.target]))
            caller = fs.call("5000")
        else:
            xml = product_dialplan([controller.target], layout="fusionpbx").replace(
                "</context>", TENANT_PEOPLE + "</context>")
            fs.install_dialplan("tenant-a", xml, layout="tenants")
            caller = fs.call("5000", context=TENANT_NAME)
        person = caller.wait_bridged_to("1001", timeout=15)
        assert ("set", "socket_resume=false") in caller.executed()      # a controller crash keeps the bridge
        gevent.sleep(1.0)
        assert not caller.hung_up()
        fs.esl.api(f"uuid_kill {person.uuid}")                       # the person hangs up
        caller.wait_hangup(timeout=15)                               # the flow went on: "Thank you", hangup
        (record,) = controller.wait_records(1)
    finally:
        controller.stop()
    assert [(s["node"], s["outcome"]) for s in record.path] == [("person", "bridged"), ("after", "hangup")]
    assert record.outcome == "hangup"


def test_a_bridge_nobody_answers_takes_its_outcome_instead_of_dead_air(fs: FreeSwitch, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bridges.yaml").write_text(bridges_flow("4999", "default"))
    controller = InProcessController(tmp_path, flows, default_flow="bridges")
    try:
        fs.install_dialplan("ivr", product_dialplan([controller.target]))
        caller = fs.call("5000")
        caller.wait_hangup(timeout=30)
        (record,) = controller.wait_records(1)
    finally:
        controller.stop()
    (person, after) = record.path
    assert person["node"] == "person" and person["outcome"] in ("failed", "no_answer")
    assert after["node"] == "after"
