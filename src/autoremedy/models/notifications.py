"""What an escalation tells people, independent of the channel that carries it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """An alert's severity in the four words every channel maps from (PagerDuty's); `decide.escalation.severity_of`
    is the one table from what labels say."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Trigger(StrEnum):
    """Why people hear about an alert: stored in the escalation outbox, shown in every channel's message."""

    RUN_FAILED = "run_failed"
    VERIFICATION_FAILED = "verification_failed"
    PLAN_FAILED = "plan_failed"
    RUN_INTERRUPTED = "run_interrupted"
    BREAKER_OPEN = "breaker_open"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_EXPIRED = "approval_expired"
    ALERT_RESOLVED = "alert_resolved"
    """A resolve: the alert resolved."""
    FIXED = "fixed"
    """A resolve: a later run of the same rule on the same alert succeeded."""


class NotificationKind(StrEnum):
    TRIGGER = "trigger"
    """Automation failed or may not act: a person should look."""
    RESOLVE = "resolve"
    """It is over (the alert resolved, or a later run fixed it): close what the trigger opened."""


@dataclass(frozen=True, slots=True)
class StepLine:
    name: str
    action: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Notification:
    kind: NotificationKind
    dedup_key: str
    """Stable per (alert fingerprint, rule): PagerDuty dedup_key, Opsgenie alias, the Slack thread it belongs to."""
    title: str
    """One line, e.g. `[autoremedy] run failed: DemoAppDown (shop/checkout)`."""
    summary: str
    """Why people hear about it: the trigger and its reason."""
    severity: Severity
    trigger: Trigger
    fingerprint: str
    rule: str
    run_id: str | None = None
    alert_status: str = "firing"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generator_url: str = ""
    runbook_url: str = ""
    steps: tuple[StepLine, ...] = ()
    thread_reference: str | None = None
    """For a resolve: what the trigger's delivery on this channel returned (Slack: `channel:ts`)."""
    client_id: str | None = None
    """The delivery's own id, the same on every attempt (Slack keeps it in the message's metadata)."""


class SendOutcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    error: str | None = None
    retry_after: float | None = None
    """Seconds the service asked us to wait (Retry-After), when it said."""
    reference: str | None = None
    """What a later resolve needs to find this delivery again (Slack: `channel:ts`)."""
