"""What an escalation tells people, independent of the channel that carries it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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
    severity: str
    """critical | error | warning | info (PagerDuty's words)."""
    trigger: str
    """run_failed | verification_failed | plan_failed | breaker_open | approval_expired | approval_requested |
    alert_resolved | fixed"""
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
