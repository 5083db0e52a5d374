"""Who hears about what, and what they are told. Pure: the notifier passes in the escalation, its run and event.

Channels, first that says anything: the rule's `escalate`, the playbook's `escalate`, the severity's channels in
`escalation.by_severity`, `escalation.default`. Approval requests go to chat only (Slack): they ask for a decision,
they do not page anyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoremedy.decide.redact import redact_notification
from autoremedy.models.notifications import Notification, NotificationKind, Severity, StepLine, Trigger
from autoremedy.models.runs import Run

CHAT_ONLY = frozenset({Trigger.APPROVAL_REQUESTED})
TITLES: Mapping[Trigger, str] = {
    Trigger.RUN_FAILED: "remediation failed",
    Trigger.VERIFICATION_FAILED: "remediation did not fix it",
    Trigger.PLAN_FAILED: "remediation could not be planned",
    Trigger.RUN_INTERRUPTED: "remediation interrupted half done",
    Trigger.BREAKER_OPEN: "circuit breaker open: automation stopped",
    Trigger.APPROVAL_EXPIRED: "approval expired: nothing was done",
    Trigger.APPROVAL_REQUESTED: "approval needed",
    Trigger.ALERT_RESOLVED: "resolved",
    Trigger.FIXED: "fixed by a later run",
}
SEVERITY_WORDS: Mapping[str, Severity] = {
    **{severity.value: severity for severity in Severity},
    "fatal": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "high": Severity.ERROR,
    "err": Severity.ERROR,
    "warn": Severity.WARNING,
    "medium": Severity.WARNING,
    "low": Severity.INFO,
    "notice": Severity.INFO,
    "none": Severity.INFO,
}
"""The one table from an alert's `severity` label to the four words every channel maps from; anything else is
an error (someone should look, nobody is woken as for critical)."""


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    default: Sequence[str]
    by_severity: Mapping[str, Sequence[str]]
    rule_channels: Mapping[str, Sequence[str] | None]
    """Each rule's own `escalate`, or its playbook's, or None."""
    configured: frozenset[str]


def channels_for(policy: EscalationPolicy, *, trigger: Trigger, rule: str, severity: str | None) -> list[str]:
    chosen = policy.rule_channels.get(rule)
    if chosen is None:
        chosen = policy.by_severity.get(severity or "") or policy.default
    if trigger in CHAT_ONLY:
        chosen = [channel for channel in chosen if channel == "slack"]
    return [channel for channel in dict.fromkeys(chosen) if channel in policy.configured]


def dedup_key(fingerprint: str, rule: str) -> str:
    """The same for every trigger and resolve of one alert and rule, on every replica."""
    return "autoremedy-" + hashlib.sha256(f"{fingerprint}/{rule}".encode()).hexdigest()[:32]


def severity_of(labels: Mapping[str, str]) -> Severity:
    return SEVERITY_WORDS.get(labels.get("severity", "").strip().lower(), Severity.ERROR)


@dataclass(frozen=True, slots=True)
class About:
    """The escalation as stored, with what it refers to."""

    kind: NotificationKind
    trigger: Trigger
    detail: str
    fingerprint: str
    rule: str
    run: Run | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str
    alert_status: str


def notification(about: About, *, thread_reference: str | None = None) -> Notification:
    kind = NotificationKind.RESOLVE if about.kind == NotificationKind.RESOLVE else NotificationKind.TRIGGER
    alert = about.labels.get("alertname", "alert")
    where = "/".join(
        v for v in (about.labels.get("namespace"), about.labels.get("app") or about.labels.get("job")) if v
    )
    title = f"[autoremedy] {TITLES[about.trigger]}: {alert}" + (f" ({where})" if where else "")
    built = Notification(
        kind=kind,
        dedup_key=dedup_key(about.fingerprint, about.rule),
        title=title,
        summary=_summary(about),
        severity=severity_of(about.labels),
        trigger=about.trigger,
        fingerprint=about.fingerprint,
        rule=about.rule,
        run_id=about.run.id if about.run else None,
        alert_status=about.alert_status,
        labels=dict(about.labels),
        annotations=dict(about.annotations),
        generator_url=about.generator_url,
        runbook_url=about.annotations.get("runbook_url", ""),
        steps=_steps(about.run),
        thread_reference=thread_reference,
    )
    return redact_notification(built)  # the one place every channel's message is built: redact it here


def _summary(about: About) -> str:
    summary = about.annotations.get("summary") or about.annotations.get("description") or ""
    lines = [about.detail]
    if summary:
        lines.append(f"Alert: {summary}")
    if about.run is not None:
        lines.append(f"Playbook {about.run.playbook} on {about.run.target}: {about.run.status.value}")
    return "\n".join(lines)


def _steps(run: Run | None) -> tuple[StepLine, ...]:
    if run is None:
        return ()
    return tuple(
        StepLine(
            name=step.name or f"step {step.index}",
            action=step.action,
            outcome=step.outcome.value,
            detail=step.error or str((step.result or {}).get("message", "")),
        )
        for step in run.steps
    )
