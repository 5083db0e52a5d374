"""Who hears about what (pure policy) and what they are told (pure notification building)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoremedy.decide.escalation import (
    SEVERITY_WORDS,
    TITLES,
    About,
    EscalationPolicy,
    channels_for,
    dedup_key,
    notification,
    severity_of,
)
from autoremedy.models.notifications import NotificationKind, Severity, Trigger
from autoremedy.models.runs import Run, RunStatus, StepOutcome, StepRecord
from autoremedy.notify.opsgenie import PRIORITIES

ALL = frozenset({"slack", "pagerduty", "opsgenie"})


def policy(
    *,
    rule: list[str] | None = None,
    by_severity: dict[str, list[str]] | None = None,
    default: tuple[str, ...] = ("slack",),
    configured: frozenset[str] = ALL,
) -> EscalationPolicy:
    return EscalationPolicy(
        default=list(default), by_severity=by_severity or {}, rule_channels={"r": rule}, configured=configured
    )


@pytest.mark.parametrize(
    ("chosen", "trigger", "severity", "expected"),
    [
        pytest.param(policy(), "run_failed", None, ["slack"], id="default"),
        pytest.param(policy(rule=["pagerduty"]), "run_failed", "critical", ["pagerduty"], id="rule-wins"),
        pytest.param(policy(rule=[]), "run_failed", "critical", [], id="rule-says-none"),
        pytest.param(
            policy(by_severity={"critical": ["pagerduty", "slack"]}),
            "run_failed",
            "critical",
            ["pagerduty", "slack"],
            id="severity",
        ),
        pytest.param(
            policy(by_severity={"critical": ["pagerduty"]}),
            "run_failed",
            "warning",
            ["slack"],
            id="other-severity-falls-back",
        ),
        pytest.param(
            policy(rule=["pagerduty", "slack"]), "approval_requested", None, ["slack"], id="approvals-to-chat-only"
        ),
        pytest.param(
            policy(rule=["pagerduty", "opsgenie"], configured=frozenset({"opsgenie"})),
            "run_failed",
            None,
            ["opsgenie"],
            id="unconfigured-dropped",
        ),
        pytest.param(policy(rule=["slack", "slack"]), "run_failed", None, ["slack"], id="no-duplicates"),
    ],
)
def test_channels(chosen: EscalationPolicy, trigger: str, severity: str | None, expected: list[str]) -> None:
    assert channels_for(chosen, trigger=trigger, rule="r", severity=severity) == expected


def test_dedup_key_is_stable_and_separates_rules() -> None:
    assert dedup_key("f1", "r") == dedup_key("f1", "r")
    assert dedup_key("f1", "r") != dedup_key("f1", "other")
    assert dedup_key("f1", "r").startswith("autoremedy-") and len(dedup_key("f1", "r")) == 43


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", "critical"),
        ("Warning", "warning"),
        ("page", "critical"),
        ("info", "info"),
        ("", "error"),
        ("weird", "error"),
        # Words only one of the two old tables knew (notify's or decide's): one table now, the same everywhere.
        ("fatal", "critical"),
        ("err", "error"),
        ("medium", "warning"),
        ("notice", "info"),
        (" high ", "error"),
        ("none", "info"),
    ],
)
def test_severity_mapping(label: str, severity: str) -> None:
    said = severity_of({"severity": label})
    assert said is Severity(severity)


def test_every_trigger_has_a_title_and_every_severity_a_priority() -> None:
    assert set(TITLES) == set(Trigger)
    assert set(PRIORITIES) == set(Severity)
    assert set(SEVERITY_WORDS.values()) == set(Severity)


def test_stored_words_are_unchanged() -> None:
    """Enums, not new words: what the store and the channels' payloads hold stays as it was."""
    assert [t.value for t in Trigger] == [
        "run_failed",
        "verification_failed",
        "plan_failed",
        "run_interrupted",
        "breaker_open",
        "approval_requested",
        "approval_expired",
        "alert_resolved",
        "fixed",
    ]
    assert [s.value for s in Severity] == ["critical", "error", "warning", "info"]


def _run() -> Run:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    steps = [
        StepRecord(
            index=0,
            name="restart",
            action="kubernetes.restart",
            inputs={},
            outcome=StepOutcome.DONE,
            result={"message": "restarted"},
        ),
        StepRecord(
            index=1,
            name="verify",
            action="prometheus.verify",
            inputs={},
            outcome=StepOutcome.FAILED,
            error="verification failed: no result",
        ),
    ]
    return Run(
        id="run1",
        status=RunStatus.FAILED,
        reason="step verify failed",
        rule="r",
        playbook="restart",
        target="deployment/shop/web",
        fingerprint="f1",
        event_id=1,
        alert_status="firing",
        dry_run=False,
        created_at=now,
        steps=steps,
    )


def test_notification_carries_what_people_need() -> None:
    about = About(
        kind="trigger",
        trigger="verification_failed",
        detail="step verify failed",
        fingerprint="f1",
        rule="r",
        run=_run(),
        labels={"alertname": "WebDown", "namespace": "shop", "app": "web", "severity": "critical"},
        annotations={"summary": "web is down", "runbook_url": "https://runbooks/web"},
        generator_url="http://prom/graph",
        alert_status="firing",
    )
    note = notification(about)
    assert note.kind is NotificationKind.TRIGGER
    assert note.title == "[autoremedy] remediation did not fix it: WebDown (shop/web)"
    assert note.severity == "critical" and note.run_id == "run1"
    assert note.runbook_url == "https://runbooks/web" and note.generator_url == "http://prom/graph"
    assert "web is down" in note.summary and "deployment/shop/web" in note.summary
    assert [(s.name, s.outcome, s.detail) for s in note.steps] == [
        ("restart", "done", "restarted"),
        ("verify", "failed", "verification failed: no result"),
    ]
    assert note.dedup_key == dedup_key("f1", "r")


def test_resolve_notification() -> None:
    about = About(
        kind="resolve",
        trigger="alert_resolved",
        detail="the alert resolved",
        fingerprint="f1",
        rule="r",
        run=None,
        labels={"alertname": "WebDown"},
        annotations={},
        generator_url="",
        alert_status="resolved",
    )
    note = notification(about, thread_reference="C1:1700000000.000100")
    assert note.kind is NotificationKind.RESOLVE
    assert note.title == "[autoremedy] resolved: WebDown"
    assert note.thread_reference == "C1:1700000000.000100"
