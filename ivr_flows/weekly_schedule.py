"""Opening hours: a weekly schedule, holidays and one-off closures, judged in local wall time.

Parsing turns the YAML shapes into a `WeeklySchedule`; `is_open(instant)` answers for an aware
instant, converted to the schedule's IANA time zone (zoneinfo), so DST changes need no special
case: "08:00-18:00" means eight to six on the local clock whatever the UTC offset that day.

Shapes:
- week: `{mon-fri: "08:00-18:00", sat: ["09:00-12:00", "14:00-16:00"], sun: closed}`; day keys are
  `mon`…`sun`, ranges `mon-fri` (may wrap: `fri-mon`), lists `sat,sun`, or `daily`. Ranges are
  `HH:MM-HH:MM` (several may be given as a list or comma-separated); `24:00` is the end of the
  day; an end before its start runs past midnight (`22:00-02:00`).
- holidays: `"2026-12-25"` (closed all day), `"12-25"` (every year), or
  `{date: "2026-12-24", closed: "12:00-24:00", name: "Christmas Eve"}` (closed only then).
- closures: `{from: "2026-07-01 12:00", to: "2026-07-03 09:00", name: …}` (local times).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEARLY_RE = re.compile(r"^(\d{2})-(\d{2})$")
_LOCAL_DT_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Minutes since local midnight; `end <= start` means it runs past midnight."""

    start: int
    end: int

    @property
    def overnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True, slots=True)
class Holiday:
    date: dt.date | None  # a given day
    month_day: tuple[int, int] | None  # or every year
    closed: tuple[TimeRange, ...] = ()  # empty: all day
    name: str = ""

    def applies(self, day: dt.date) -> bool:
        if self.date is not None:
            return self.date == day
        return self.month_day == (day.month, day.day)


@dataclass(frozen=True, slots=True)
class Closure:
    start: dt.datetime  # naive local wall time
    end: dt.datetime
    name: str = ""


@dataclass(frozen=True)
class WeeklySchedule:
    timezone: str
    week: dict[int, tuple[TimeRange, ...]] = field(default_factory=dict)
    holidays: tuple[Holiday, ...] = ()
    closures: tuple[Closure, ...] = ()

    def is_open(self, instant: dt.datetime) -> bool:
        if instant.tzinfo is None:
            raise ValueError("is_open needs an aware datetime")
        tz = ZoneInfo(self.timezone)
        local = instant.astimezone(tz)
        for closure in self.closures:
            start = closure.start.replace(tzinfo=tz)
            end = closure.end.replace(tzinfo=tz)
            if start <= instant < end:
                return False
        day = local.date()
        minute = local.hour * 60 + local.minute
        for holiday in self.holidays:
            if holiday.applies(day):
                if not holiday.closed:
                    return False
                if any(_contains(r, minute) for r in holiday.closed):
                    return False
        for time_range in self.week.get(day.weekday(), ()):
            if time_range.overnight:
                if minute >= time_range.start:
                    return True
            elif time_range.start <= minute < time_range.end:
                return True
        yesterday = (day.weekday() - 1) % 7
        return any(r.overnight and minute < r.end for r in self.week.get(yesterday, ()))


def _contains(time_range: TimeRange, minute: int) -> bool:
    if time_range.overnight:
        return minute >= time_range.start or minute < time_range.end
    return time_range.start <= minute < time_range.end


def parse_range(text: str) -> TimeRange:
    match = _RANGE_RE.match(text)
    if match is None:
        raise ValueError(f"expected a time range like 08:00-18:00, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} is not a valid time range")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end == 24 * 60:
        end = 24 * 60
    if start == end:
        raise ValueError(f"time range {text!r} is empty")
    return TimeRange(start, end)


def parse_ranges(value: Any) -> tuple[TimeRange, ...]:
    if isinstance(value, str) and value.strip().lower() == "closed":
        return ()
    if isinstance(value, str):
        parts = [p for p in value.split(",") if p.strip()]
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        parts = list(value)
    else:
        raise ValueError(f'expected time ranges like "08:00-18:00", a list of them, or closed; got {value!r}')
    return tuple(parse_range(p) for p in parts)


def parse_days(key: str) -> list[int]:
    """`mon-fri`, `sat,sun`, `daily` → weekday numbers (Monday = 0)."""
    days: list[int] = []
    for part in (p.strip().lower() for p in key.split(",")):
        if part in ("daily", "everyday"):
            days.extend(range(7))
        elif "-" in part:
            first, _, last = (s.strip() for s in part.partition("-"))
            if first not in DAYS or last not in DAYS:
                raise ValueError(f"unknown day range {part!r}; use mon, tue, wed, thu, fri, sat, sun")
            index = DAYS.index(first)
            while True:
                days.append(index)
                if index == DAYS.index(last):
                    break
                index = (index + 1) % 7
        elif part in DAYS:
            days.append(DAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r}; use mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri")
    return days


def parse_week(value: dict[str, Any]) -> dict[int, tuple[TimeRange, ...]]:
    week: dict[int, tuple[TimeRange, ...]] = {}
    for key, ranges in value.items():
        parsed = parse_ranges(ranges)
        for day in parse_days(key):
            week[day] = week.get(day, ()) + parsed
    return week


def parse_holiday(value: Any) -> Holiday:
    name = ""
    closed: tuple[TimeRange, ...] = ()
    if isinstance(value, dict):
        unknown = set(value) - {"date", "closed", "name"}
        if unknown:
            raise ValueError(f"unknown holiday key {sorted(unknown)[0]!r}; a holiday has date, closed, name")
        if "date" not in value:
            raise ValueError("a holiday needs a date")
        name = str(value.get("name", ""))
        if "closed" in value:
            closed = parse_ranges(value["closed"])
        value = value["date"]
    text = str(value)
    if _DATE_RE.match(text):
        try:
            return Holiday(dt.date.fromisoformat(text), None, closed, name)
        except ValueError as e:
            raise ValueError(f"{text!r} is not a valid date") from e
    yearly = _YEARLY_RE.match(text)
    if yearly:
        month, day = int(yearly.group(1)), int(yearly.group(2))
        try:
            dt.date(2024, month, day)  # a leap year, so 02-29 is accepted
        except ValueError as e:
            raise ValueError(f"{text!r} is not a valid month-day") from e
        return Holiday(None, (month, day), closed, name)
    raise ValueError(f"expected a holiday date like 2026-12-25 or 12-25, got {text!r}")


def _local_datetime(text: str) -> dt.datetime:
    match = _LOCAL_DT_RE.match(text.strip())
    if match is None:
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError as e:
            raise ValueError(f"expected a local date and time like 2026-07-01 12:00, got {text!r}") from e
        return parsed.replace(tzinfo=None)
    return dt.datetime.fromisoformat(f"{match.group(1)}T{int(match.group(2)):02d}:{match.group(3)}")


def parse_closure(value: Any) -> Closure:
    if not isinstance(value, dict) or "from" not in value or "to" not in value:
        raise ValueError('a closure is {from: "YYYY-MM-DD HH:MM", to: "YYYY-MM-DD HH:MM", name: …}')
    unknown = set(value) - {"from", "to", "name"}
    if unknown:
        raise ValueError(f"unknown closure key {sorted(unknown)[0]!r}; a closure has from, to, name")
    start, end = _local_datetime(str(value["from"])), _local_datetime(str(value["to"]))
    if end <= start:
        raise ValueError(f"closure ends ({value['to']}) before it starts ({value['from']})")
    return Closure(start, end, str(value.get("name", "")))
