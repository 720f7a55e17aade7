"""What keeps a caller safe when a controller is down, hung, dies or shuts down, on the real FreeSWITCH.

Each test runs ``ivr serve`` as a process of its own (so it can be killed, frozen with SIGSTOP,
woken with SIGCONT, or drained with SIGTERM) behind the dialplan ``ivr dialplan`` prints, and
asserts on what FreeSWITCH did: the caller reaches the person at 1000 through the fallback, and a
controller that wakes up late leaves a rescued caller alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import gevent
import pytest

from tests.support.controllers import OPERATOR, REPO, ServeProcess, product_dialplan
from tests.support.freeswitch import Caller, FreeSwitch, free_port

EXAMPLES = REPO / "examples" / "flows"
DEADMAN = ["--deadman-seconds", "4", "--deadman-every", "1.5"]


@pytest.fixture()
def serve(tmp_path: Path):
    started: list[ServeProcess] = []

    def start(*args: str, port: int | None = None) -> ServeProcess:
        process = ServeProcess(tmp_path, port=port or free_port(),
                               args=["--flows-dir", str(EXAMPLES), "--drain-seconds", "2", *args])
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def records(process: ServeProcess) -> list[dict]:
    return [e for e in process.log_events() if e.get("event") == "call.record"]


def wait_record(process: ServeProcess, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = records(process)
        if found:
            return found[-1]
        gevent.sleep(0.1)
    raise AssertionError(f"no call record in the controller's log:\n{process.log()[-3000:]}")


def assert_left_alone(fs: FreeSwitch, caller: Caller, since: int, seconds: float = 3.0) -> None:
    """For ``seconds``, the caller stays with the person: no application on the caller's channel,
    no unbridge, no hangup (FreeSWITCH's events from index ``since`` on)."""
    gevent.sleep(seconds)
    later = [e for e in fs.esl.events[since:] if e.uuid == caller.b_uuid]
    assert [e for e in later if e.name in ("CHANNEL_EXECUTE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP")] == []
    assert not caller.hung_up()


def test_nobody_listening_sends_the_caller_to_a_person(fs: FreeSwitch) -> None:
    fs.install_dialplan("ivr", product_dialplan([f"127.0.0.1:{free_port()}"]))
    started = time.monotonic()
    caller = fs.call("5000")
    caller.wait_bridged_to(OPERATOR, timeout=10)
    assert time.monotonic() - started < 5


def test_the_second_controller_takes_the_call_when_the_first_is_down(fs: FreeSwitch, serve) -> None:
    backup = serve()
    fs.install_dialplan("ivr", product_dialplan([f"127.0.0.1:{free_port()}", backup.target]))
    caller = fs.call("5000")
    caller.wait_app("play_and_get_digits", timeout=30)       # the backup runs the flow
    caller.hangup()
    assert wait_record(backup)["outcome"] == "caller_hangup"


def test_a_controller_killed_mid_call_hands_the_caller_to_a_person_at_once(fs: FreeSwitch, serve) -> None:
    controller = serve(*DEADMAN)
    fs.install_dialplan("ivr", product_dialplan([controller.target]))
    caller = fs.call("5000")
    caller.wait_app("speak", data="Press 1", timeout=30)
    controller.kill()
    killed = time.monotonic()
    caller.wait_bridged_to(OPERATOR, timeout=10)
    assert time.monotonic() - killed < 3                      # socket_resume: not after the prompt, not 10 s
    mark = len(fs.esl.events)
    assert_left_alone(fs, caller, mark, seconds=DEADMAN_FIRES + 1)   # the dead task went with the fallback


DEADMAN_FIRES = 4


def test_a_controller_hung_mid_call_is_replaced_by_the_dead_mans_switch(fs: FreeSwitch, serve) -> None:
    controller = serve(*DEADMAN)
    fs.install_dialplan("ivr", product_dialplan([controller.target]))
    caller = fs.call("5000")
    caller.wait_app("speak", data="Press 1", timeout=30)
    controller.freeze()
    frozen = time.monotonic()
    caller.wait_bridged_to(OPERATOR, timeout=DEADMAN_FIRES + 6)
    assert time.monotonic() - frozen <= DEADMAN_FIRES + 2.5
    assert ("bridge", f"loopback/{OPERATOR}/default") in caller.executed()
    mark = len(fs.esl.events)
    controller.wake()
    assert_left_alone(fs, caller, mark)
    record = wait_record(controller)
    assert record["outcome"] == "control_lost"


def test_a_controller_that_wakes_after_the_start_up_watchdog_leaves_the_call_alone(fs: FreeSwitch, serve) -> None:
    controller = serve(*DEADMAN)
    fs.install_dialplan("ivr", product_dialplan([controller.target], watchdog_seconds=3))
    controller.freeze()                      # accepts the TCP connection (the kernel does), sends nothing
    caller = fs.call("5000")
    caller.wait_bridged_to(OPERATOR, timeout=10)
    mark = len(fs.esl.events)
    controller.wake()
    assert_left_alone(fs, caller, mark, seconds=DEADMAN_FIRES + 1)
    record = wait_record(controller)
    assert record["outcome"] == "control_lost"
    apps = caller.apps()
    fallback_only = ["unset", "sched_cancel", "answer", "playback", "bridge"]
    assert apps[apps.index("socket") + 1:] == fallback_only


def test_a_call_over_capacity_reaches_a_person_and_gets_a_record(fs: FreeSwitch, serve) -> None:
    controller = serve("--max-calls", "1")
    fs.install_dialplan("ivr", product_dialplan([controller.target]))
    first = fs.call("5000")
    first.wait_app("speak", timeout=30)
    second = fs.call("5000", caller_number="5559876")
    started = time.monotonic()
    second.wait_bridged_to(OPERATOR, timeout=10)
    assert time.monotonic() - started < 3
    assert wait_record(controller)["outcome"] == "over_capacity"
    first.hangup()


def test_sigterm_drain_hands_live_calls_back_to_a_person(fs: FreeSwitch, serve) -> None:
    controller = serve(*DEADMAN)
    fs.install_dialplan("ivr", product_dialplan([controller.target]))
    caller = fs.call("5000")
    caller.wait_app("play_and_get_digits", timeout=30)
    controller.proc.send_signal(15)
    caller.wait_bridged_to(OPERATOR, timeout=15)               # drain deadline 2 s, then the hand-back
    assert controller.proc.wait(timeout=20) == 0
    assert wait_record(controller)["outcome"] == "handed_back"
    mark = len(fs.esl.events)
    assert_left_alone(fs, caller, mark, seconds=DEADMAN_FIRES + 1)
