"""`decide.replay` keeps in memory the facts `store.transactions.gather_facts` reads from the store: one timeline
through both (SQLite and PostgreSQL, with a worker that finishes every due run at once) gets the same verdict for
every run, the same cancellations and the same breaker, across every guardrail."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoremedy.actions.registry import default_registry
from autoremedy.config.ruleset import load_ruleset
from autoremedy.decide.guardrails import Guard, compile_window
from autoremedy.decide.planning import Plan, Ruleset, decide
from autoremedy.decide.replay import Replay, ReplayEvent
from autoremedy.models.durations import parse_duration
from autoremedy.models.events import AlertEvent, NewEvent
from autoremedy.models.guardrails import BreakerSettings, GuardrailSettings, MaintenanceWindow
from autoremedy.models.runs import RunStatus
from autoremedy.store.base import NewRun, NewStep, Store
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from tests.support.inprocess import fresh_database
from tests.support.postgres import PostgresServer

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = [
    {"name": "cool", "matchers": ["alertname=Cool"], "playbook": "p", "cooldown": "10m", "budgets": ["2/1h"]},
    {"name": "slow", "matchers": ["alertname=Slow"], "playbook": "p", "delay": "1m"},
    {"name": "ask", "matchers": ["alertname=Ask"], "playbook": "p", "approval": "required"},
    {"name": "first", "matchers": ["alertname=Busy"], "playbook": "p", "continue": True},
    {"name": "second", "matchers": ["alertname=Busy"], "playbook": "p"},
    {"name": "held", "matchers": ["alertname=Held"], "playbook": "p"},
    {"name": "maint", "matchers": ["alertname=Maint"], "playbook": "p"},
    {"name": "broken", "matchers": ["alertname=Broken"], "playbook": "needs-label"},
]
PLAYBOOKS = [
    {"name": "p", "target": "t/{{ alert.labels.t }}", "steps": [{"action": "log", "with": {"message": "hi"}}]},
    {
        "name": "needs-label",
        "target": "t/{{ alert.labels.missing }}",
        "steps": [{"action": "log", "with": {"message": "x"}}],
    },
]
GUARDRAILS = GuardrailSettings(
    breaker=BreakerSettings(max_runs=5, within=timedelta(minutes=10), quiet_period=timedelta(minutes=20)),
    approval_timeout=timedelta(minutes=15),
    maintenance_windows=[
        MaintenanceWindow(
            name="db-upgrade",
            matchers=["alertname=Maint"],
            action="defer",
            start=START + timedelta(hours=1),
            end=START + timedelta(hours=1, minutes=30),
        )
    ],
)
# (offset, alertname, target, status)
TIMELINE = [
    ("0s", "Cool", "a", "firing"),
    ("0s", "Busy", "b", "firing"),  # two rules, one target: the second is target_busy
    ("5m", "Cool", "a", "firing"),  # cooldown
    ("5m", "Slow", "c", "firing"),  # delayed
    ("5m30s", "Slow", "c", "resolved"),  # cancels it
    ("11m", "Cool", "a", "firing"),  # allowed (2nd in the hour)
    ("12m", "Slow", "d", "firing"),  # delayed, starts at 13m
    ("13m", "Slow", "d", "firing"),  # runs due at 13m are over: allowed -> delayed again
    ("14m", "Ask", "e", "firing"),  # awaiting approval
    ("20m", "Ask", "e", "firing"),  # target busy with the approval
    ("22m", "Cool", "a", "firing"),  # budget exhausted (2/1h)
    ("30m", "Ask", "e", "firing"),  # approval expired at 29m: allowed to ask again
    ("31m", "Held", "f", "firing"),  # paused
    ("32m", "Broken", "g", "firing"),  # the plan cannot be rendered
    ("1h5m", "Maint", "h", "firing"),  # deferred by the window
    ("1h10m", "Maint", "h", "resolved"),  # cancels the deferred run
    ("1h12m", "Busy", "i", "firing"),
    ("1h12m", "Busy", "j", "firing"),
    ("1h12m", "Busy", "k", "firing"),
    ("1h13m", "Busy", "l", "firing"),
    ("1h13m", "Busy", "m", "firing"),  # the breaker opens somewhere in here
    ("1h14m", "Cool", "z", "firing"),
    ("2h", "Cool", "y", "firing"),  # quiet for 20 minutes: closed again
]


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, shared_postgres: PostgresServer
) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "postgres":
        backend = PostgresStore(await fresh_database(shared_postgres))
    else:
        backend = SQLiteStore(tmp_path / "store.db")
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def ruleset(root: Path) -> Ruleset:
    (root / "rules").mkdir()
    (root / "playbooks").mkdir()
    (root / "rules" / "r.yaml").write_text(yaml.safe_dump({"rules": RULES}))
    for playbook in PLAYBOOKS:
        (root / "playbooks" / f"{playbook['name']}.yaml").write_text(yaml.safe_dump(playbook))
    return load_ruleset(root / "rules", root / "playbooks", actions=default_registry().input_models())


def new_event(offset: str, alertname: str, target: str, status: str) -> NewEvent:
    return NewEvent(
        fingerprint=f"{alertname}-{target}",
        status=status,
        starts_at=f"{alertname}-{target}-{offset}" if status == "firing" else "resolved-" + offset,
        ends_at=None,
        labels={"alertname": alertname, "t": target},
        annotations={},
        generator_url="",
        receiver="autoremedy",
        external_url="",
        group_key="{}",
    )


def new_run(event: AlertEvent, plan: Plan) -> NewRun:
    return NewRun(
        id=secrets.token_hex(8),
        event_id=event.id,
        status=RunStatus.FAILED if plan.error else RunStatus.PLANNED,
        reason=plan.error or "planned",
        rule=plan.rule,
        playbook=plan.playbook,
        target=plan.target,
        fingerprint=event.fingerprint,
        alert_status=event.status,
        dry_run=plan.dry_run,
        steps=[NewStep(s.index, s.name, s.action, s.inputs) for s in plan.steps],
    )


async def run_due_work(store: Store, now: datetime) -> None:
    """The worker at `now`, with actions that take no time: approvals expire, every due run runs and finishes."""
    await store.expire_approvals(now=now)
    while (run := await store.claim_run(now=now)) is not None:
        await store.finish_run(run.id, RunStatus.SUCCEEDED, "done", [], now=now, epoch=run.epoch, escalation=None)


async def through_store(store: Store, rules: Ruleset, when: datetime, new: NewEvent) -> dict[str, Any]:
    (outcome,) = await store.insert_events([new], now=when)
    event = await store.claim_event(now=when)
    assert event is not None and event.id == outcome.event_id
    runs = [new_run(event, plan) for plan in decide(rules, event.template_view(), dry_run=False)]
    rule_map = {c.rule.name: c.rule for c in rules.rules}
    windows = [compile_window(w) for w in GUARDRAILS.maintenance_windows]
    guard = Guard(rule_map, windows, GUARDRAILS, event.labels, when)
    decision = await store.record_decision(event, runs, [], guard=guard, now=when)
    return {
        "runs": [(d.rule, d.status.value, d.verdict.reason if d.verdict else "plan_failed") for d in decision.runs],
        "cancelled": len(decision.cancelled),
        "breaker_open": (await store.breaker()).open,
    }


async def test_one_timeline_gets_the_same_verdicts_in_memory_and_in_the_store(store: Store, tmp_path: Path) -> None:
    rules = ruleset(tmp_path)
    replay = Replay(
        rules,
        guardrails=GUARDRAILS,
        windows=[compile_window(w) for w in GUARDRAILS.maintenance_windows],
        paused=frozenset({"held"}),
    )
    await store.set_pause("held", actor="test", reason="agreement", now=START)
    previous: datetime | None = None
    reasons: set[str] = set()
    for offset, alertname, target, status in TIMELINE:
        when = START + parse_duration(offset)
        if previous is not None and when > previous:
            await run_due_work(store, when)
        previous = when
        new = new_event(offset, alertname, target, status)
        recorded = await through_store(store, rules, when, new)
        outcome = replay.step(ReplayEvent(at=when, view=new.template_view()))
        simulated = {
            "runs": [(r.rule, r.status.value, r.reason) for r in outcome.runs],
            "cancelled": len(outcome.cancelled),
            "breaker_open": replay.breaker.open,
        }
        assert simulated == recorded, f"at {offset} ({alertname} {target} {status})"
        reasons.update(reason for _, _, reason in recorded["runs"])
    # The timeline exercised every verdict, so agreeing means something.
    assert reasons == {
        "allowed",
        "cooldown",
        "budget_exhausted",
        "target_busy",
        "delayed",
        "awaiting_approval",
        "paused",
        "maintenance",
        "breaker_open",
        "plan_failed",
    }
