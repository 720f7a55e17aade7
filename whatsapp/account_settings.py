"""What an account's owner configures: handoff, business hours, replies, the template, the secretary.

Stored as the account's ``settings`` (JSON) and validated here when set (`ivr whatsapp add/update`);
unknown keys are refused. Business hours use the flows' weekly schedule shapes
(`ivr_flows.weekly_schedule`), judged in the tenant's time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr_flows.weekly_schedule import WeeklySchedule, parse_closure, parse_holiday, parse_week

_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")

HANDOFF_MESSAGE = "I'll pass you to a member of our team, who will answer you here."
OUT_OF_HOURS = "Thank you for your message. We are closed right now and will answer when we open."
MEDIA_REPLY = "Sorry, I can only read text and voice messages."
RATE_LIMIT_REPLY = "You are sending messages faster than I can answer. Please wait a minute and try again."
UNREADABLE_VOICE = "Sorry, I could not understand that voice message. Could you write it, or try again?"


class AccountSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    handoff_url: str | None = None            # a signed POST when a person must take over
    handoff_message: str = HANDOFF_MESSAGE
    hours: dict[str, Any] | None = None       # {mon-fri: "08:00-18:00", sat: "09:00-12:00"}; None: always open
    holidays: list[Any] = Field(default_factory=list)
    closures: list[Any] = Field(default_factory=list)
    out_of_hours_reply: str = OUT_OF_HOURS
    answer_out_of_hours: bool = False         # True: the secretary answers at night too (handoffs wait)
    template_content_sid: str | None = None   # a Content template (HX…) for outside the 24-hour window
    idle_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    assistant_flow: str | None = None         # FLOW[:NODE]: answer with that ask_ai node's settings
    instructions: str | None = None
    min_score: float | None = Field(default=None, ge=-1, le=1)
    top_k: int | None = Field(default=None, ge=1, le=20)
    media_reply: str = MEDIA_REPLY
    unreadable_voice_reply: str = UNREADABLE_VOICE
    rate_limit_reply: str = RATE_LIMIT_REPLY

    @field_validator("handoff_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("handoff_url must be an http(s) URL")
        return value

    @field_validator("template_content_sid")
    @classmethod
    def _content_sid(cls, value: str | None) -> str | None:
        if value is not None and not _CONTENT_SID.match(value):
            raise ValueError("template_content_sid must be a Content SID (HX and 32 hex digits)")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            parse_week(value)
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: list[Any]) -> list[Any]:
        for item in value:
            parse_holiday(item)
        return value

    @field_validator("closures")
    @classmethod
    def _closures(cls, value: list[Any]) -> list[Any]:
        for item in value:
            parse_closure(item)
        return value

    def schedule(self, time_zone: str) -> WeeklySchedule | None:
        if self.hours is None:
            return None
        return WeeklySchedule(timezone=time_zone, week=parse_week(self.hours),
                              holidays=tuple(parse_holiday(h) for h in self.holidays),
                              closures=tuple(parse_closure(c) for c in self.closures))

    def is_open(self, time_zone: str, now: dt.datetime) -> bool:
        schedule = self.schedule(time_zone)
        return True if schedule is None else schedule.is_open(now)
