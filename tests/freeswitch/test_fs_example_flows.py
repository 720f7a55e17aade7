"""The shipped example flows on the real FreeSWITCH, through the controller `make serve` runs: every
node type they use and the outcomes a caller can reach (keys, silence, wrong keys, speech, business
hours open and closed, a goto into the account flow, digits with read-back, a signed webhook to the
tenant's CRM, each branch, voicemail), each ending where FreeSWITCH says it did."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.controllers import OPERATOR, product_dialplan
from tests.support.crm_stub import CrmStub
from tests.support.freeswitch import Caller, FreeSwitch
from tests.support.tenant_controller import REPO, TenantController, caller_voice, ivr, say_wav, tenant_environment

pytestmark = [pytest.mark.models, pytest.mark.slow]

TENANT = "tenant-a.example"
DEMO, MAIN = "5000", "5010"
OPEN = dt.datetime(2026, 12, 2, 14, 0, tzinfo=dt.UTC)      # a Wednesday, 11:00 in São Paulo
CLOSED = dt.datetime(2026, 12, 6, 14, 0, tzinfo=dt.UTC)    # a Sunday
ACCOUNTS = {
    "123456": {"customer": {"name": "Ada"}, "account": {"balance": "42", "status": "active"}},
    "222222": {"customer": {"name": "Bob"}, "account": {"balance": "-17", "status": "active"}},
    "333333": {"customer": {"name": "Eve"}, "account": {"balance": "5", "status": "blocked"}},
}


class Clock:
    now = OPEN

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def crm() -> Iterator[CrmStub]:
    stub = CrmStub(ACCOUNTS)
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory, crm: CrmStub) -> Iterator[tuple[TenantController, Clock]]:
    folder = tmp_path_factory.mktemp("examples")
    clock = Clock()
    with tenant_environment(folder) as url:
        controller = TenantController(folder, url)

        def hook(ctx: Any, route: Any) -> None:
            ctx.clock = clock                  # business hours: open or closed as the test needs

        controller.controller.context_hook = hook
        try:
            account = (REPO / "examples" / "flows" / "account.yaml").read_text()
            (folder / "account.yaml").write_text(account.replace("https://crm.example.com", crm.url))
            ivr("flows", "publish", TENANT, str(folder / "account.yaml"))
            ivr("flows", "publish", TENANT, str(REPO / "examples" / "flows" / "main.yaml"))
            ivr("tenants", "route", TENANT, MAIN, "acme-main")
            # The CRM stub is on loopback: allowed explicitly, as an operator would for an internal CRM.
            ivr("tenants", "update", TENANT, "--allow-host", "127.0.0.1", "--allow-network", "127.0.0.0/8")
            os.environ["CRM_SECRET"] = crm.secret              # what `sign_with: crm` signs with
            ivr("tenants", "secret", "set", TENANT, "crm", "--value", "env:CRM_SECRET")
            ivr("tenants", "reload", TENANT)
            yield controller, clock
        finally:
            controller.stop()


@pytest.fixture()
def phone(fs: FreeSwitch, tenant: tuple[TenantController, Clock]) -> FreeSwitch:
    controller, clock = tenant
    clock.now = OPEN
    for number in (DEMO, MAIN):
        fs.install_dialplan(f"ivr-{number}", product_dialplan([controller.target], number=number))
    return fs


def path_of(tenant: tuple[TenantController, Clock], caller: Caller) -> list[tuple[str, str]]:
    record = tenant[0].record(caller.b_uuid)
    return [(step["node"], step["outcome"]) for step in record.path]


# ---------------------------------------------------------------------------------------------- demo


def test_demo_wrong_keys_three_times_go_to_the_operator(phone: FreeSwitch, tenant) -> None:
    caller = phone.call(DEMO)
    for attempt in (1, 2, 3):
        caller.wait_app("play_and_get_digits", nth=attempt, timeout=60)
        caller.press("9")
    caller.wait_app("set", data=f"agent={OPERATOR}", timeout=30)
    assert path_of(tenant, caller) == [("welcome", "done"), ("menu", "failure"), ("operator", "transferred")]
    assert tenant[0].record(caller.b_uuid).outcome == "transferred"


def test_demo_silence_goes_to_the_operator_after_the_no_input_prompts(phone: FreeSwitch, tenant) -> None:
    caller = phone.call(DEMO)
    caller.wait_app("set", data=f"agent={OPERATOR}", timeout=90)
    record = tenant[0].record(caller.b_uuid)
    (menu,) = [s for s in record.path if s["node"] == "menu"]
    assert (menu["outcome"], menu["detail"]) == ("failure", {"attempts": 3, "no_input": 3, "no_match": 0})
    # The prompt, then "didn't hear anything" and the prompt again, twice: five prompts, then the operator.
    assert len(caller.b_events("PLAYBACK_START")) >= 5


# ---------------------------------------------------------------------------------------------- main


def test_main_open_a_spoken_choice_reaches_support(phone: FreeSwitch, tenant, tmp_path: Path) -> None:
    caller = phone.call(MAIN)
    caller.wait_app("record", timeout=90)                       # the menu listens after its prompt
    caller.say(say_wav(caller_voice(), "support", tmp_path), wait=True)
    caller.wait_app("set", data="agent=1002", timeout=30)
    assert path_of(tenant, caller) == [("hours", "open"), ("welcome", "done"), ("menu", "2"),
                                       ("support", "transferred")]


def test_main_closed_takes_a_voicemail(phone: FreeSwitch, tenant, tmp_path: Path) -> None:
    tenant[1].now = CLOSED
    caller = phone.call(MAIN)
    caller.wait_app("record", timeout=90)
    caller.say(say_wav(caller_voice(), "Please call me back tomorrow about my order.", tmp_path), wait=True)
    caller.press("#")
    caller.wait_hangup(timeout=60)
    record = tenant[0].record(caller.b_uuid)
    assert [s["node"] for s in record.path] == ["hours", "closed_message", "voicemail", "thanks", "goodbye"]
    (voicemail,) = record.recordings
    assert Path(voicemail["path"]).is_file() and voicemail["stop"] == "terminator"
    assert "order" in (voicemail["transcript"] or "").split(), voicemail


def enter_account(caller: Caller, digits: str, *, menu_nth: int = 1) -> None:
    caller.wait_app("record", nth=menu_nth, timeout=90)         # main menu (keys or speech)
    caller.press("3")
    caller.wait_app("play_and_get_digits", timeout=60)          # the account number
    caller.press(digits + "#")
    caller.wait_app("play_and_get_digits", nth=2, timeout=60)   # the read-back: 1 to confirm
    caller.press("1")


@pytest.mark.parametrize(("account", "end"), [
    ("123456", [("route", "default"), ("balance", "done"), ("goodbye", "hangup")]),
    ("222222", [("route", "in_debt"), ("debt", "done"), ("operator", "transferred")]),
    ("333333", [("route", "blocked"), ("operator", "transferred")]),
])
def test_main_account_self_service_every_branch(phone: FreeSwitch, tenant, crm: CrmStub, account: str,
                                                end: list[tuple[str, str]]) -> None:
    caller = phone.call(MAIN)
    enter_account(caller, account)
    if end[-1][1] == "transferred":
        caller.wait_app("set", data=f"agent={OPERATOR}", timeout=60)
    else:
        caller.wait_hangup(timeout=60)
    path = path_of(tenant, caller)
    assert path[:6] == [("hours", "open"), ("welcome", "done"), ("menu", "3"), ("account", "entered"),
                        ("ask_account", "collected"), ("lookup", "ok")]
    assert path[-len(end):] == end
    assert crm.requests[-1]["signed"] and crm.requests[-1]["body"]["account"] == account


def test_main_account_lookup_failure_goes_to_the_operator(phone: FreeSwitch, tenant) -> None:
    caller = phone.call(MAIN)
    enter_account(caller, "999999")                             # the CRM answers 404
    caller.wait_app("set", data=f"agent={OPERATOR}", timeout=60)
    assert path_of(tenant, caller)[-3:] == [("lookup", "error"), ("lookup_failed", "done"),
                                            ("operator", "transferred")]
