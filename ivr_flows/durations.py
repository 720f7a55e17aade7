"""Durations in flow files: `5s`, `500ms`, `2m`, `1h`, or a bare number of seconds.

`Duration` is the pydantic field type (a float of seconds once validated); its JSON Schema
accepts a number or such a string, so editors can check it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"


def parse_duration(value: Any) -> float:
    """Seconds in `value`; raise ValueError with a message meant for the flow author."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 5s, 500ms or 2m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"expected a duration like 5s, 500ms or 2m, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected a duration like 5s, 500ms or 2m, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a positive number of seconds, got {value!r}")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "seconds, or a string like 5s, 500ms, 2m",
        }
    ),
]
