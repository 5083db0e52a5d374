"""Guardrail settings: what rules and the config file say about when automation may act."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from autoremedy.models.durations import Duration, parse_duration

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Budget(_Strict):
    """At most `max` runs of a rule on one target within `per`."""

    max: int = Field(ge=1)
    per: Duration

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        # "3/1h" reads as three runs per hour.
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*/\s*(\S+)\s*", value)
            if match is None:
                raise ValueError(f"budget {value!r}: write it as COUNT/DURATION, e.g. 3/1h")
            return {"max": int(match.group(1)), "per": parse_duration(match.group(2))}
        return value


class BreakerSettings(_Strict):
    max_runs: int = Field(
        default=20, ge=1, description="more runs than this within `within`, across all rules, opens it"
    )
    within: Duration = Field(default=timedelta(minutes=10))
    quiet_period: Duration = Field(
        default=timedelta(minutes=15), description="it closes when no run was attempted for this long"
    )


class MaintenanceWindow(_Strict):
    """A time when automation must not act: absolute (`start`/`end`) or weekly (`days`, `at`, `duration`)."""

    name: str
    matchers: list[str] = Field(default_factory=list, description="alerts it applies to; empty: all")
    action: Literal["skip", "defer"] = Field(default="defer", description="defer: run when the window ends")
    start: AwareDatetime | None = Field(default=None, description="with a timezone offset (Z, +02:00)")
    end: AwareDatetime | None = Field(default=None, description="with a timezone offset (Z, +02:00)")
    days: list[Weekday] = Field(default_factory=list)
    at: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM local time")
    duration: Duration | None = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        absolute = self.start is not None or self.end is not None
        weekly = bool(self.days) or self.at is not None or self.duration is not None
        if absolute == weekly:
            raise ValueError("a window is either absolute (start, end) or weekly (days, at, duration)")
        if absolute and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("an absolute window needs start and a later end")
        if weekly and (not self.days or self.at is None or self.duration is None):
            raise ValueError("a weekly window needs days, at and duration")
        return self


class GuardrailSettings(_Strict):
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    approval_timeout: Duration = Field(default=timedelta(hours=1), description="unanswered approvals expire")
    maintenance_windows: list[MaintenanceWindow] = Field(default_factory=list)
