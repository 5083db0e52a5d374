"""Run records: what was decided for an alert event and what each step did."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from autoremedy.models.ids import EventId, Fingerprint, RuleName, RunId


class RunStatus(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    DRY_RUN = "dry_run"
    INTERRUPTED = "interrupted"
    DELAYED = "delayed"
    DEFERRED = "deferred"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING = "waiting"
    """Waiting for its alert to resolve (an alert.resolved step), holding no worker slot."""


FINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.DRY_RUN, RunStatus.INTERRUPTED}
)
WAITING_STATUSES = frozenset({RunStatus.DELAYED, RunStatus.DEFERRED, RunStatus.AWAITING_APPROVAL})


class GuardrailReason(StrEnum):
    """Why a run may act or not: the guardrail verdict's code, kept on the run (`runs.guardrail`) and audited; and
    why a waiting run stopped waiting."""

    ALLOWED = "allowed"
    PAUSED = "paused"
    MAINTENANCE = "maintenance"
    BREAKER_OPEN = "breaker_open"
    TARGET_BUSY = "target_busy"
    COOLDOWN = "cooldown"
    BUDGET_EXHAUSTED = "budget_exhausted"
    DELAYED = "delayed"
    AWAITING_APPROVAL = "awaiting_approval"
    RULE_REMOVED = "rule_removed"
    ALERT_RESOLVED = "alert_resolved"
    """A waiting run was cancelled: its alert resolved first."""
    APPROVAL_EXPIRED = "approval_expired"
    DENIED = "denied"


class StepOutcome(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    NOT_RUN = "not_run"
    INTERRUPTED = "interrupted"
    """Started, never finished: the daemon stopped or died during the step."""


class StepRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    name: str | None
    action: str
    inputs: dict[str, Any]
    attempts: int = 0
    outcome: StepOutcome = StepOutcome.PENDING
    error: str | None = None
    result: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Run(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: RunId
    status: RunStatus
    reason: str
    rule: RuleName
    playbook: str
    target: str
    fingerprint: Fingerprint
    event_id: EventId
    alert_status: str
    dry_run: bool
    guardrail: str = "allowed"
    """The guardrail verdict's reason code (allowed, cooldown, breaker_open, ...)."""
    created_at: datetime
    not_before: datetime | None = None
    expires_at: datetime | None = None
    wait_until: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    owner: str | None = None
    """The daemon instance that claimed it last (executes it while it is running)."""
    epoch: int = 0
    """How many times it was claimed: the owner's writes carry it, so a writer that lost the run is refused."""
    steps: list[StepRecord] = []
