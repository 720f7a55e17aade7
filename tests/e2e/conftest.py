"""Fixtures of the end-to-end tests (helpers live in `e2e_controller`: conftest modules share one name)."""

from __future__ import annotations

import pytest
from e2e_controller import Controller


@pytest.fixture()
def controller(tmp_path):
    c = Controller(tmp_path)
    yield c
    c.stop()
