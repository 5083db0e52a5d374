"""Playbooks: the steps that remediate. Loaded from playbooks/*.yaml, one playbook a file."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autoremedy.models.durations import Duration
from autoremedy.models.rules import NAME_PATTERN, Channel


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="inputs; strings are templates")
    timeout: Duration = Field(default=timedelta(seconds=30), description="per attempt")
    retries: int = Field(default=0, ge=0, le=20, description="extra attempts when the action says retry")
    on_failure: Literal["abort", "continue"] = "abort"


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    target: str = Field(min_length=1, description="template naming what is acted on, e.g. deployment/ns/name")
    steps: list[Step] = Field(min_length=1)
    escalate: list[Channel] | None = Field(default=None, description="channels, where the rule names none")
