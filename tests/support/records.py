"""Events, runs and decisions as the store takes them, for tests that drive a real store without the daemon: the
store contract suite, the control service's and the chat commands' tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from autoremedy.decide.guardrails import Guard
from autoremedy.models.events import AlertEvent, NewEvent
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.rules import Rule
from autoremedy.models.runs import RunStatus
from autoremedy.store.base import NewRun, NewStep, Store

NOW = datetime(2026, 11, 26, 22, 15, tzinfo=UTC)
"""The tests' fixed "now" (the store takes it as an argument)."""


def event(fingerprint: str = "f1", status: str = "firing", starts_at: str = "2026-11-26T22:15:01.179000Z") -> NewEvent:
    return NewEvent(
        fingerprint=fingerprint,
        status=status,
        starts_at=starts_at,
        ends_at=None,
        labels={"alertname": "A", "namespace": "ns"},
        annotations={"summary": "s"},
        generator_url="http://g",
        receiver="autoremedy",
        external_url="http://am",
        group_key="{}:{}",
    )


def new_run(
    run_id: str,
    event_id: int,
    *,
    status: RunStatus = RunStatus.PLANNED,
    steps: int = 2,
    target: str = "t/x",
    rule: str = "r",
    fingerprint: str = "f1",
) -> NewRun:
    return NewRun(
        id=run_id,
        event_id=event_id,
        status=status,
        reason="planned",
        rule=rule,
        playbook="p",
        target=target,
        fingerprint=fingerprint,
        alert_status="firing",
        dry_run=False,
        steps=[NewStep(i, f"s{i}", "log", {"message": str(i)}) for i in range(steps)],
    )


def guard(now: datetime = NOW, settings: GuardrailSettings | None = None, **rule: Any) -> Guard:
    rules = {"r": Rule.model_validate({"name": "r", "playbook": "p", **rule})}
    return Guard(rules=rules, windows=(), settings=settings or GuardrailSettings(), labels={}, now=now)


async def stored(store: Store, new: NewEvent, now: datetime = NOW) -> AlertEvent:
    (outcome,) = await store.insert_events([new], now=now)
    found = await store.get_event(outcome.event_id)
    assert found is not None
    return found


async def decide(store: Store, alert: AlertEvent, *runs: NewRun, now: datetime = NOW, **rule: Any) -> list[RunStatus]:
    decision = await store.record_decision(alert, list(runs), [], guard=guard(now, **rule), now=now)
    return [decided.status for decided in decision.runs]
