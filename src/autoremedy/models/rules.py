"""Rules: which alerts run which playbook. Loaded from rules/*.yaml."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autoremedy.models.durations import Duration
from autoremedy.models.guardrails import Budget

AlertState = Literal["firing", "resolved"]
Channel = Literal["slack", "pagerduty", "opsgenie"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class Rule(BaseModel):
    """One rule. Rules are tried in order; the first match wins unless it says `continue: true`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    matchers: list[str] = Field(default_factory=list, description="Alertmanager matcher strings, all must match")
    playbook: str
    on: frozenset[AlertState] = Field(default=frozenset({"firing"}))
    params: dict[str, Any] = Field(default_factory=dict, description="values templated from the alert")
    continue_: bool = Field(default=False, alias="continue")
    dry_run: bool | None = Field(default=None, description="overrides the global dry_run for this rule")
    cooldown: Duration | None = Field(default=None, description="after a run on a target, none again for this long")
    budgets: list[Budget] = Field(default_factory=list, description="e.g. [3/1h, 7/1d] per target")
    delay: Duration | None = Field(default=None, description="wait this long; a resolved alert cancels the run")
    approval: Literal["none", "required"] = Field(default="none", description="required: a person approves first")
    escalate: list[Channel] | None = Field(
        default=None, description="channels told when automation fails or may not act; [] for none"
    )

    @field_validator("on", mode="before")
    @classmethod
    def _states(cls, value: object) -> object:
        if value == "both":
            return frozenset({"firing", "resolved"})
        if isinstance(value, str):
            return frozenset({value})
        if isinstance(value, list) and not value:
            raise ValueError("`on` needs at least one of firing, resolved")
        return value


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule]
