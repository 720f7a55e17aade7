"""The demo flow end to end: the simulator dials into the real server over TCP."""

from __future__ import annotations

import gc

import gevent
import pytest
import structlog

from esl_controller.simulator import CallerScript, Hangup, Press, Wait, WaitForApp, WaitForCommand


def _transfer_target(call) -> str | None:
    return call.state.transferred_to


def test_press_1_reaches_sales(controller):
    call, outcome = controller.call(CallerScript([WaitForApp("play_and_get_digits"), Press("1")]))
    assert _transfer_target(call).startswith("1001")
    record = controller.records[-1]
    assert record.outcome == "transferred"
    assert [s["node"] for s in record.path] == ["welcome", "menu", "sales"]
    cmds = call.commands()
    assert cmds[:2] == ["connect", "sendmsg execute sched_cancel"]
    assert any(c.startswith("sendmsg execute set socket_resume=false") for c in cmds)


def test_press_2_reaches_support_even_over_the_prompt(controller):
    call, _ = controller.call(CallerScript([WaitForApp("speak", nth=2), Press("2")]))
    assert _transfer_target(call).startswith("1002")
    assert controller.records[-1].path[-1]["node"] == "support"


def test_wrong_digits_retry_then_operator(controller):
    script = CallerScript([WaitForApp("play_and_get_digits", nth=1), Press("9"),
                           WaitForApp("play_and_get_digits", nth=2), Press("7"),
                           WaitForApp("play_and_get_digits", nth=3), Press("8")])
    call, _ = controller.call(script)
    assert _transfer_target(call).startswith("1000")
    record = controller.records[-1]
    assert [s["node"] for s in record.path] == ["welcome", "menu", "operator"]
    assert "Sorry, that is not a valid option." in call.state.heard_what


def test_silence_retries_then_operator(controller):
    call, _ = controller.call(CallerScript([]))
    assert _transfer_target(call).startswith("1000")
    assert call.state.heard_what.count("Sorry, I didn't hear anything.") >= 2


def _live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead)


def test_caller_hangs_up_at_every_step(controller):
    # How many commands a full call takes, to hang up after each one of them.
    full, _ = controller.call(CallerScript([WaitForApp("play_and_get_digits"), Press("1")]))
    steps = len(full.commands())
    assert steps > 8
    baseline = _live_greenlets()
    for n in range(1, steps + 1):
        with structlog.testing.capture_logs() as logs:
            call, outcome = controller.call(CallerScript([WaitForCommand(n), Hangup()], start="now"))
        record = controller.records[-1]
        assert record.outcome in ("caller_hangup", "transferred"), (n, record.outcome)
        assert not [e for e in logs if e.get("log_level") in ("error", "critical")
                    or e["event"] in ("call.controller_error", "esl.call_handler_crashed")], (n, logs)
        assert any(e["event"] == "call.end" for e in logs), n
    gevent.sleep(0.2)
    assert _live_greenlets() <= baseline + 2, "greenlets leaked across calls"


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_hangup_while_an_execute_is_pending(controller, delay):
    call, _ = controller.call(CallerScript([WaitForApp("speak"), Wait(delay), Hangup()]))
    assert controller.records[-1].outcome == "caller_hangup"
    assert call.state.hung_up
