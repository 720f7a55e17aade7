"""The real FreeSWITCH: one private instance per test session (`freeswitch`), cleaned after each test (`fs`).

Every test here is marked ``freeswitch``. Without FreeSWITCH installed they are skipped with the
reason; with ``IVR_TEST_FREESWITCH_REQUIRED=1`` (CI) a missing FreeSWITCH fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.freeswitch import REQUIRED_ENV, FreeSwitch, missing_reason


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.freeswitch)


@pytest.fixture(scope="session")
def freeswitch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeSwitch]:
    reason = missing_reason()
    if reason:
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(f"{REQUIRED_ENV}=1 but {reason}")
        pytest.skip(reason)
    fs = FreeSwitch(tmp_path_factory.mktemp("freeswitch")).start()
    try:
        yield fs
    finally:
        fs.stop()


@pytest.fixture()
def fs(freeswitch: FreeSwitch) -> Iterator[FreeSwitch]:
    """The session's FreeSWITCH, with no calls and no test dialplan left over afterwards."""
    yield freeswitch
    freeswitch.hupall()
    if not freeswitch.wait_idle(10):
        pytest.fail("calls were still up 10 s after the test hung them all up")
    freeswitch.clear_dialplans()
