"""`business_hours`: `open` or `closed` now, from a weekly schedule, holidays and closures.

```yaml
hours:
  type: business_hours
  timezone: America/Sao_Paulo        # or the flow's top-level `timezone`
  open: {mon-fri: "08:00-18:00", sat: "09:00-12:00"}
  holidays: ["2026-12-25", "01-01", {date: "2026-12-24", closed: "12:00-24:00"}]
  closures: [{from: "2026-07-01 12:00", to: "2026-07-01 15:00", name: staff meeting}]
  next: {open: welcome, closed: voicemail}
```
The time comes from the context's injectable clock, judged in the time zone's local wall time
(see `ivr_flows.weekly_schedule`). Outcomes: `open`, `closed`, `error`.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, WithJsonSchema, model_validator

from ivr_flows.nodes.base import LoadEnv, Node, NodeProblem, did_you_mean
from ivr_flows.weekly_schedule import (
    Closure,
    Holiday,
    TimeRange,
    WeeklySchedule,
    parse_closure,
    parse_days,
    parse_holiday,
    parse_ranges,
)

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r}{did_you_mean(name, _zone_names())}") from e
    return name


def _check_days(key: str) -> str:
    parse_days(key)
    return key


TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
DayKey = Annotated[str, AfterValidator(_check_days)]
Ranges = Annotated[
    tuple[TimeRange, ...],
    BeforeValidator(parse_ranges),
    WithJsonSchema(
        {
            "description": '"08:00-18:00", "08:00-12:00, 13:00-18:00", a list of ranges, or "closed"',
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        }
    ),
]
HolidayEntry = Annotated[
    Holiday,
    BeforeValidator(parse_holiday),
    WithJsonSchema(
        {
            "description": '"2026-12-25", "12-25" (yearly) or {date, closed: "12:00-24:00", name}',
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "date": {"type": "string"},
                        "closed": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                        "name": {"type": "string"},
                    },
                    "required": ["date"],
                    "additionalProperties": False,
                },
            ],
        }
    ),
]
ClosureEntry = Annotated[
    Closure,
    BeforeValidator(parse_closure),
    WithJsonSchema(
        {
            "type": "object",
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "name": {"type": "string"}},
            "required": ["from", "to"],
            "additionalProperties": False,
        }
    ),
]


class BusinessHoursNode(Node):
    """Open or closed now."""

    TYPE: ClassVar[str] = "business_hours"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("open", "closed")

    type: Literal["business_hours"]
    timezone: TimeZoneName | None = None
    open: dict[DayKey, Ranges]
    holidays: list[HolidayEntry] = Field(default_factory=list)
    closures: list[ClosureEntry] = Field(default_factory=list)
    _week: dict[int, tuple[TimeRange, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _build_week(self) -> BusinessHoursNode:
        week: dict[int, tuple[TimeRange, ...]] = {}
        for key, ranges in self.open.items():
            for day in parse_days(key):
                week[day] = week.get(day, ()) + ranges
        self._week = week
        return self

    def schedule(self, timezone: str) -> WeeklySchedule:
        return WeeklySchedule(timezone, self._week, tuple(self.holidays), tuple(self.closures))

    def check(self, env: LoadEnv) -> list[NodeProblem]:
        problems = super().check(env)
        if self.timezone is None and env.flow_timezone is None:
            problems.append(
                NodeProblem(("type",), "business_hours needs a 'timezone' (here or at the flow's top level)")
            )
        return problems

    def run(self, ctx: FlowContext) -> str:
        timezone = self.timezone or (ctx.flow.timezone if ctx.flow is not None else None)
        if timezone is None:
            raise ValueError("business_hours has no time zone")
        is_open = self.schedule(timezone).is_open(ctx.clock())
        return "open" if is_open else "closed"
