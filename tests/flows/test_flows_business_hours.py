"""business_hours: weekly ranges in local wall time across DST changes (America/Sao_Paulo's
historic DST, America/New_York's 2026 transitions), overnight ranges, holidays and closures."""

from __future__ import annotations

import datetime as dt

import pytest
from flows_fakes import FakeCall, make_ctx

from ivr_flows import FlowRunner, load_flow_text

UTC = dt.UTC


def hours_flow(node: str, top: str = "") -> str:
    return (
        f"flow: hours\n{top}start: hours\nnodes:\n  hours: {node}\n"
        "  open: {type: hangup}\n  closed: {type: hangup}\n"
    )


def state(text: str, at: dt.datetime) -> str:
    ctx = make_ctx(FakeCall(), at=at)
    result = FlowRunner(load_flow_text(text, "t.yaml"), ctx).run()
    return result.path[-1]


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


SAO_PAULO = hours_flow(
    '{type: business_hours, timezone: America/Sao_Paulo, open: {mon-fri: "08:00-18:00", '
    'sat: "23:00-24:00", sun: "00:00-01:00"}, next: {open: open, closed: closed}}'
)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2018, 11, 2, 10, 30), "closed"),  # Fri 07:30 -03 (before DST)
        (utc(2018, 11, 2, 11, 30), "open"),  # Fri 08:30 -03
        (utc(2018, 11, 5, 10, 30), "open"),  # Mon 08:30 -02 (DST): a fixed -03 offset would say 07:30
        (utc(2018, 11, 5, 20, 30), "closed"),  # Mon 18:30 -02: a fixed -03 offset would say 17:30
        (utc(2018, 11, 4, 2, 30), "open"),  # Sat 23:30 -03, just before the clocks jump at midnight
        (utc(2018, 11, 4, 3, 0), "closed"),  # Sun 01:00 -02: 00:00-01:00 never happened that night
        (utc(2019, 2, 17, 1, 30), "open"),  # Sat 23:30 -02, first time
        (utc(2019, 2, 17, 2, 30), "open"),  # Sat 23:30 -03, the repeated hour
        (utc(2019, 2, 17, 3, 30), "open"),  # Sun 00:30 -03
        (utc(2019, 2, 17, 4, 30), "closed"),  # Sun 01:30 -03
    ],
)
def test_sao_paulo_historic_dst(instant: dt.datetime, expected: str) -> None:
    assert state(SAO_PAULO, instant) == expected


NEW_YORK = hours_flow(
    '{type: business_hours, open: {mon-fri: "08:00-18:00", sun: "01:00-02:00"}, next: {open: open, closed: closed}}',
    top="timezone: America/New_York\n",
)
NEW_YORK_NIGHTS = hours_flow(
    '{type: business_hours, open: {sat: "22:00-03:00"}, next: {open: open, closed: closed}}',
    top="timezone: America/New_York\n",
)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 3, 2, 12, 30), "closed"),  # Mon 07:30 EST
        (utc(2026, 3, 2, 13, 30), "open"),  # Mon 08:30 EST
        (utc(2026, 3, 9, 12, 30), "open"),  # Mon 08:30 EDT (DST began Sun 8 March 02:00)
        (utc(2026, 3, 9, 22, 30), "closed"),  # Mon 18:30 EDT
        (utc(2026, 10, 30, 12, 30), "open"),  # Fri 08:30 EDT
        (utc(2026, 11, 2, 12, 30), "closed"),  # Mon 07:30 EST (DST ended Sun 1 November 02:00)
        (utc(2026, 11, 2, 13, 30), "open"),  # Mon 08:30 EST
        (utc(2026, 11, 1, 4, 30), "closed"),  # Sun 00:30 EDT
        (utc(2026, 11, 1, 5, 30), "open"),  # Sun 01:30 EDT
        (utc(2026, 11, 1, 6, 30), "open"),  # Sun 01:30 EST, the repeated hour
        (utc(2026, 11, 1, 7, 30), "closed"),  # Sun 02:30 EST
    ],
)
def test_new_york_2026_transitions(instant: dt.datetime, expected: str) -> None:
    assert state(NEW_YORK, instant) == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 3, 8, 4, 30), "open"),  # Sat 23:30 EST
        (utc(2026, 3, 8, 6, 30), "open"),  # Sun 01:30 EST, inside Saturday's 22:00-03:00
        (utc(2026, 3, 8, 7, 10), "closed"),  # Sun 03:10 EDT (a fixed EST offset would say 02:10)
        (utc(2026, 3, 8, 2, 30), "closed"),  # Sat 21:30 EST
        (utc(2026, 10, 31, 2, 30), "closed"),  # Fri 22:30 EDT
        (utc(2026, 11, 1, 6, 30), "open"),  # Sun 01:30 EST (second time)
        (utc(2026, 11, 1, 7, 30), "open"),  # Sun 02:30 EST
        (utc(2026, 11, 1, 8, 30), "closed"),  # Sun 03:30 EST
    ],
)
def test_new_york_overnight_ranges_across_dst(instant: dt.datetime, expected: str) -> None:
    assert state(NEW_YORK_NIGHTS, instant) == expected


HOLIDAYS = hours_flow(
    '{type: business_hours, timezone: America/Sao_Paulo, open: {daily: "08:00-12:00, 13:00-18:00"}, '
    'holidays: ["2026-12-25", "01-01", {date: "2026-12-24", closed: "12:00-24:00", name: Eve}], '
    'closures: [{from: "2026-07-01 10:00", to: "2026-07-02 09:00", name: move}], '
    "next: {open: open, closed: closed}}"
)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 12, 23, 15, 0), "closed"),  # 12:00 local: the lunch break between the ranges
        (utc(2026, 12, 23, 14, 0), "open"),  # 11:00
        (utc(2026, 12, 25, 14, 0), "closed"),  # Christmas, all day
        (utc(2027, 1, 1, 14, 0), "closed"),  # New Year: every year
        (utc(2026, 1, 1, 14, 0), "closed"),
        (utc(2026, 12, 24, 14, 0), "open"),  # Christmas Eve morning
        (utc(2026, 12, 24, 17, 0), "closed"),  # Christmas Eve afternoon
        (utc(2026, 7, 1, 12, 30), "open"),  # 09:30, before the closure
        (utc(2026, 7, 1, 13, 30), "closed"),  # 10:30, inside the closure
        (utc(2026, 7, 2, 11, 30), "closed"),  # next day 08:30, still closed
        (utc(2026, 7, 2, 12, 30), "open"),  # 09:30, closure over
    ],
)
def test_holidays_and_closures(instant: dt.datetime, expected: str) -> None:
    assert state(HOLIDAYS, instant) == expected


def test_days_wrap_and_lists() -> None:
    text = hours_flow(
        '{type: business_hours, timezone: UTC, open: {"fri-mon": "10:00-11:00", "wed,thu": closed}, '
        "next: {open: open, closed: closed}}"
    )
    assert state(text, utc(2026, 3, 9, 10, 30)) == "open"  # Monday
    assert state(text, utc(2026, 3, 10, 10, 30)) == "closed"  # Tuesday (not listed)
    assert state(text, utc(2026, 3, 11, 10, 30)) == "closed"  # Wednesday (closed)
    assert state(text, utc(2026, 3, 8, 10, 30)) == "open"  # Sunday


def test_the_clock_must_be_aware() -> None:
    ctx = make_ctx(FakeCall(), at=dt.datetime(2026, 3, 9, 12, 0))  # naive
    text = hours_flow(
        '{type: business_hours, timezone: UTC, open: {daily: "00:00-24:00"}, '
        "next: {open: open, closed: closed, error: closed}}"
    )
    result = FlowRunner(load_flow_text(text, "t.yaml"), ctx).run()
    assert result.steps[0].outcome == "error"
