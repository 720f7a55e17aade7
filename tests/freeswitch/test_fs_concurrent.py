"""Twenty callers at once on the real FreeSWITCH: each reaches the person its keys chose, each call
gets its record, nothing is logged as an error, and no call is left behind on either side."""

from __future__ import annotations

from pathlib import Path

import gevent
import structlog

from tests.support.controllers import REPO, InProcessController, product_dialplan
from tests.support.freeswitch import Caller, FreeSwitch

CALLERS = 20


def test_twenty_concurrent_callers_each_reach_their_choice(fs: FreeSwitch, tmp_path: Path) -> None:
    controller = InProcessController(tmp_path, REPO / "examples" / "flows", default_flow="demo-main")
    try:
        fs.install_dialplan("ivr", product_dialplan([controller.target]))
        keys = ["1" if n % 2 else "2" for n in range(CALLERS)]

        def one(n: int) -> Caller:
            caller = fs.call("5000", caller_number=f"55500{n:02d}")
            caller.wait_app("play_and_get_digits", timeout=60)
            gevent.sleep(0.05 * n)                       # callers press at different moments
            caller.press(keys[n])
            caller.wait_app("set", data=f"agent=100{keys[n]}", timeout=30)
            return caller

        with structlog.testing.capture_logs() as logs:
            jobs = [gevent.spawn(one, n) for n in range(CALLERS)]
            gevent.joinall(jobs, timeout=120, raise_error=True)
            records = controller.wait_records(CALLERS, timeout=30)
        callers = [job.value for job in jobs]
    finally:
        controller.stop()
    assert all(c is not None for c in callers)
    assert sorted(r.call_uuid for r in records) == sorted(c.b_uuid for c in callers)
    assert {r.outcome for r in records} == {"transferred"}
    by_uuid = {r.call_uuid: r for r in records}
    for n, caller in enumerate(callers):
        assert [s["node"] for s in by_uuid[caller.b_uuid].path] == ["welcome", "menu",
                                                                    "sales" if keys[n] == "1" else "support"]
    assert [e for e in logs if e.get("log_level") in ("error", "critical")] == []
    assert not controller.controller.sessions                 # every call let go of
