"""Rule test files (`rule-tests/*.yaml`): timelines of alerts and what the rules must do with each.

A case is a timeline: alerts at offsets from the case's start (`0s`, `5m`, `2h`), each with the expectations at
that step. An expectation says only what it names: `matched` (the rules that match, in order), `runs` (every run
the alert leads to, in order, each compared on the keys given: rule, playbook, target, verdict, step inputs) and
`cancelled` (rules whose waiting runs this alert cancels). `runs: []` says that no run starts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoremedy.models.durations import Duration
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.rules import AlertState

DEFAULT_START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
Verdict = Literal[
    "allowed",
    "cooldown",
    "budget_exhausted",
    "target_busy",
    "delayed",
    "awaiting_approval",
    "maintenance",
    "breaker_open",
    "paused",
    "plan_failed",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ExpectedStep(_Strict):
    """One step of the run's playbook, by position; `with` is compared on the keys given (nested maps too)."""

    name: str | None = None
    action: str | None = None
    with_: dict[str, Any] | None = Field(default=None, alias="with", description="rendered inputs, partial match")


class ExpectedRun(_Strict):
    rule: str
    playbook: str | None = None
    target: str | None = None
    verdict: Verdict | None = Field(
        default=None, description="the guardrail's verdict: allowed, cooldown, ... (plan_failed: not rendered)"
    )
    dry_run: bool | None = None
    steps: list[ExpectedStep] | None = Field(default=None, description="the first steps of the plan, by position")


class Expectation(_Strict):
    matched: list[str] | None = Field(default=None, description="the rules that match, in order")
    runs: list[ExpectedRun] | None = Field(default=None, description="every run the alert leads to; [] for none")
    cancelled: list[str] | None = Field(default=None, description="rules whose waiting runs this alert cancels")


class TimelineAlert(_Strict):
    """An alert as Alertmanager sends it, at an offset from the case's start."""

    at: Duration = Field(default=timedelta(0), description="offset from the case's start: 0s, 5m, 2h")
    status: AlertState = "firing"
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    fingerprint: str | None = Field(default=None, description="default: derived from the labels")
    expect: Expectation | None = None


class RuleTestCase(_Strict):
    name: str = Field(min_length=1)
    start: datetime = Field(default=DEFAULT_START, description="when the timeline starts (RFC 3339)")
    run_duration: Duration = Field(
        default=timedelta(0), description="how long a started run stays active on its target (one run per target)"
    )
    paused: list[str] = Field(default_factory=list, description="rules paused during the case; `all` for all")
    dry_run: bool | None = Field(default=None, description="the global dry_run; default: the config's")
    guardrails: GuardrailSettings | None = Field(
        default=None, description="breaker, approval timeout and maintenance windows; default: the config's"
    )
    alerts: list[TimelineAlert] = Field(min_length=1)

    @model_validator(mode="after")
    def _in_time_order(self) -> RuleTestCase:
        if self.start.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2026-01-05T12:00:00Z")
        offsets = [alert.at for alert in self.alerts]
        if offsets != sorted(offsets):
            raise ValueError("alerts must be in time order (`at` never decreases)")
        return self


class RuleTestFile(_Strict):
    tests: list[RuleTestCase] = Field(min_length=1)
