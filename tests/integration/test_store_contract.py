"""One contract suite for every store backend: what the engine and the API rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoremedy.decide.guardrails import Guard
from autoremedy.models.events import AlertEvent, EventState, NewEvent
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.notifications import Trigger
from autoremedy.models.rules import Rule
from autoremedy.models.runs import RunStatus, StepOutcome
from autoremedy.store.base import (
    AuditEntry,
    ConsoleSession,
    EventDecision,
    NewRun,
    NotAwaitingApproval,
    RunTakenOver,
    Store,
    StoreDataError,
)
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from autoremedy.store.sqlstore import SqlStore
from tests.support.inprocess import fresh_database
from tests.support.postgres import PostgresServer
from tests.support.records import NOW, decide, event, guard, new_run, stored


@pytest.fixture(params=["sqlite", "postgres"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path, shared_postgres: PostgresServer
) -> AsyncIterator[tuple[Store, Store]]:
    """Two instances (two owners) on one database."""
    backends: tuple[SqlStore, SqlStore]
    if request.param == "postgres":
        dsn = await fresh_database(shared_postgres)
        backends = (PostgresStore(dsn), PostgresStore(dsn))
    else:
        backends = (SQLiteStore(tmp_path / "store.db"), SQLiteStore(tmp_path / "store.db"))
    for backend in backends:
        await backend.open()
    try:
        yield backends
    finally:
        for backend in backends:
            await backend.close()


@pytest.fixture
def store(stores: tuple[Store, Store]) -> Store:
    return stores[0]


def become(store: Store, owner: str) -> None:
    """The same connection acting as another daemon instance (one that found this one dead)."""
    setattr(store, "owner", owner)  # noqa: B010 - Store (the protocol) has no owner; every backend does


async def test_duplicate_key_is_counted_not_stored(store: Store) -> None:
    first = await store.insert_events([event(), event("f2")], now=NOW)
    again = await store.insert_events([event(), event(status="resolved")], now=NOW)
    assert [o.duplicate for o in first] == [False, False]
    assert [o.duplicate for o in again] == [True, False]
    assert again[0].event_id == first[0].event_id
    found = await store.get_event(first[0].event_id)
    assert found is not None and found.deliveries == 2
    assert await store.pending_events() == 3


async def test_a_large_batch_with_repeats_gives_each_delivery_its_own_outcome_in_order(store: Store) -> None:
    (before,) = await store.insert_events([event("seen")], now=NOW)
    names = [f"n{i}" for i in range(150)]  # more rows than one statement holds, in uneven pieces
    batch = [event(name) for name in names] + [event("n7"), event("seen"), event("n149"), event("n7")]
    outcomes = await store.insert_events(batch, now=NOW)
    assert [o.duplicate for o in outcomes] == [False] * 150 + [True] * 4
    ids = {name: o.event_id for name, o in zip(names, outcomes, strict=False)}
    assert len(set(ids.values())) == 150 and before.event_id not in ids.values()
    assert [o.event_id for o in outcomes[150:]] == [ids["n7"], before.event_id, ids["n149"], ids["n7"]]
    deliveries = {name: (await store.get_event(ids[name])) for name in ("n0", "n7", "n149")}
    assert {name: e.deliveries for name, e in deliveries.items() if e is not None} == {"n0": 1, "n7": 3, "n149": 2}
    seen = await store.get_event(before.event_id)
    assert seen is not None and seen.deliveries == 2
    assert await store.pending_events() == 151


async def test_events_are_claimed_once_in_arrival_order(store: Store) -> None:
    ids = [o.event_id for o in await store.insert_events([event("a"), event("b")], now=NOW)]
    first, second, none = (
        await store.claim_event(now=NOW),
        await store.claim_event(now=NOW),
        await store.claim_event(now=NOW),
    )
    assert first is not None and second is not None
    assert [first.id, second.id] == ids
    assert none is None
    assert first.labels == {"alertname": "A", "namespace": "ns"}


async def test_decision_marks_event_done_and_creates_runs_atomically(store: Store) -> None:
    alert = await stored(store, event())
    await store.claim_event(now=NOW)
    assert await decide(store, alert, new_run("r1", alert.id)) == [RunStatus.PLANNED]
    assert await store.pending_events() == 0
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.PLANNED and run.guardrail == "allowed"
    assert [s.inputs for s in run.steps] == [{"message": "0"}, {"message": "1"}]
    assert [a.kind for a in await store.list_audit(run_id="r1", limit=10)] == ["verdict_allowed"]


async def test_a_failing_decision_leaves_the_event_queued(store: Store) -> None:
    alert = await stored(store, event())
    await store.claim_event(now=NOW)
    with pytest.raises(StoreDataError):  # refused data (the same run id twice), not an outage: never retried as one
        await decide(store, alert, new_run("same", alert.id, target="a"), new_run("same", alert.id, target="b"))
    assert await store.get_run("same") is None
    assert (await store.recover(reason="stale", now=NOW + timedelta(seconds=1))).requeued_events == 0  # still ours
    recovery = await store.recover(reason="stale", now=NOW + timedelta(minutes=10))
    assert recovery.requeued_events == 1
    assert await store.claim_event(now=NOW + timedelta(minutes=10)) is not None


async def test_run_lifecycle(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("r1", alert.id))
    run = await store.claim_run(now=NOW)
    assert run is not None and run.status is RunStatus.RUNNING and run.started_at is not None
    assert await store.claim_run(now=NOW) is None
    step = run.steps[0].model_copy(
        update={
            "attempts": 2,
            "outcome": StepOutcome.DONE,
            "result": {"status": 200},
            "started_at": NOW,
            "finished_at": NOW + timedelta(seconds=1),
        }
    )
    await store.update_step("r1", step, epoch=run.epoch)
    await store.finish_run(
        "r1", RunStatus.FAILED, "step 1 failed", [AuditEntry("run_failed", "x", "r1")], now=NOW, epoch=run.epoch
    )
    done = await store.get_run("r1")
    assert done is not None
    assert (done.status, done.reason, done.finished_at) == (RunStatus.FAILED, "step 1 failed", NOW)
    assert done.steps[0].attempts == 2 and done.steps[0].result == {"status": 200}
    assert done.steps[1].outcome is StepOutcome.NOT_RUN


async def test_unrendered_plans_are_failed_and_never_claimed(store: Store) -> None:
    alert = await stored(store, event())
    assert await decide(store, alert, new_run("bad", alert.id, status=RunStatus.FAILED)) == [RunStatus.FAILED]
    assert await store.claim_run(now=NOW) is None
    bad = await store.get_run("bad")
    assert bad is not None and bad.finished_at == NOW and bad.guardrail == "not_asked"
    assert {s.outcome for s in bad.steps} == {StepOutcome.NOT_RUN}


async def test_a_dead_instances_events_are_requeued_and_its_runs_resumed(store: Store) -> None:
    ids = [o.event_id for o in await store.insert_events([event("a"), event("b")], now=NOW)]
    await store.claim_event(now=NOW)
    second = await store.get_event(ids[1])
    assert second is not None
    await decide(store, second, new_run("r1", ids[1]))
    await store.claim_run(now=NOW)  # ...and the instance dies
    become(store, "another-instance")
    recovery = await store.recover(reason="crashed", now=NOW + timedelta(minutes=10))
    assert recovery.requeued_events == 1 and recovery.interrupted_runs == []
    claimed = await store.claim_event(now=NOW + timedelta(minutes=10))
    assert claimed is not None and claimed.id == ids[0]
    taken = await store.claim_run(now=NOW + timedelta(minutes=10))
    assert taken is not None and taken.id == "r1" and taken.status is RunStatus.RUNNING
    assert [a.kind for a in await store.list_audit(run_id="r1", limit=5)] == ["run_taken_over", "verdict_allowed"]


async def test_a_run_taken_over_too_often_is_interrupted(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("r1", alert.id))
    at = NOW
    await store.claim_run(now=at)
    for index in range(3):  # it keeps killing whoever runs it
        at += timedelta(minutes=10)
        become(store, f"instance-{index}")
        assert await store.claim_run(now=at) is not None
    at += timedelta(minutes=10)
    recovery = await store.recover(reason="taken over 3 times", now=at)
    assert recovery.interrupted_runs == ["r1"]
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.reason) == (RunStatus.INTERRUPTED, "taken over 3 times")


async def test_a_claim_records_the_start_of_the_step_to_run_first_fenced_by_itself(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("r1", alert.id))
    run = await store.claim_run(now=NOW)
    assert run is not None and [s.started_at for s in run.steps] == [NOW, None]
    kept = await store.get_run("r1")
    assert kept is not None and kept.steps == run.steps  # what the claim returns is what it recorded
    first = run.steps[0].model_copy(update={"outcome": StepOutcome.DONE, "finished_at": NOW})
    await store.update_steps("r1", [first], epoch=run.epoch)  # ...and the instance dies in the second step
    later = NOW + timedelta(minutes=10)
    become(store, "another-instance")
    taken = await store.claim_run(now=later)
    assert taken is not None and taken.epoch == run.epoch + 1
    assert [(s.outcome, s.started_at) for s in taken.steps] == [(StepOutcome.DONE, NOW), (StepOutcome.PENDING, later)]


async def test_record_and_claim_claims_due_runs_for_this_instance_in_the_decisions_transaction(store: Store) -> None:
    alerts = [await stored(store, event(f"f{index}")) for index in range(3)]
    await store.claim_events(limit=3, now=NOW)
    batch = [
        EventDecision(alert, [new_run(f"r{index}", alert.id, target=f"t/{index}")], [], guard())
        for index, alert in enumerate(alerts)
    ]
    recorded = await store.record_and_claim(batch, now=NOW, limit=2)
    assert [[r.status for r in d.runs] for d in recorded.decisions] == [[RunStatus.PLANNED]] * 3
    assert [run.id for run in recorded.claimed] == ["r0", "r1"]  # the oldest first, up to the limit
    for run in recorded.claimed:
        assert (run.status, run.epoch, run.started_at) == (RunStatus.RUNNING, 1, NOW)
        assert [s.started_at for s in run.steps] == [NOW, None]  # the first step's start, recorded with the claim
        await store.update_steps(run.id, [run.steps[0]], epoch=run.epoch)  # fenced writes are this instance's
    assert await store.heartbeat(now=NOW) == {"r0": 1, "r1": 1}
    assert await store.pending_events() == 0
    waiting = await store.get_run("r2")
    assert waiting is not None and waiting.status is RunStatus.PLANNED  # no slot left for it: the worker's to claim


async def test_record_and_claim_claims_nothing_when_the_batch_made_nothing_due_or_has_no_slot(store: Store) -> None:
    older, first, second = [await stored(store, event(f"f{index}")) for index in range(3)]
    await decide(store, older, new_run("older", older.id))  # due, but not this batch's doing
    await store.claim_events(limit=3, now=NOW)
    unmatched = EventDecision(first, [], [], guard())
    assert (await store.record_and_claim([unmatched], now=NOW, limit=4)).claimed == []
    matched = EventDecision(second, [new_run("new", second.id, target="t/new")], [], guard())
    assert (await store.record_and_claim([matched], now=NOW, limit=0)).claimed == []
    assert {run.status for run in await store.list_runs(status=None, limit=5)} == {RunStatus.PLANNED}


async def test_finish_run_says_whether_it_queued_an_escalation(store: Store) -> None:
    alert = await stored(store, event())
    outcomes = []
    for index, (status, trigger) in enumerate(
        [(RunStatus.SUCCEEDED, None), (RunStatus.FAILED, Trigger.RUN_FAILED), (RunStatus.SUCCEEDED, None)]
    ):
        await decide(store, alert, new_run(f"r{index}", alert.id), now=NOW + timedelta(seconds=index))
        run = await store.claim_run(now=NOW + timedelta(seconds=index))
        assert run is not None
        finished = await store.finish_run(run.id, status, "x", [], now=NOW, epoch=run.epoch, escalation=trigger)
        outcomes.append(finished)
    # A success with nothing open queues nothing; a failure escalates; the success after it resolves the failure.
    assert outcomes == [False, True, True]
    assert [(e.kind, e.trigger) for e in reversed(await store.escalations(limit=5))] == [
        ("trigger", "run_failed"),
        ("resolve", "fixed"),
    ]


async def test_heartbeats_keep_runs_owned(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("r1", alert.id))
    await store.claim_run(now=NOW)
    assert await store.heartbeat(now=datetime.now(UTC)) == {"r1": 1}
    assert await store.claim_run(now=datetime.now(UTC)) is None  # fresh heartbeat: nobody takes it


async def test_list_runs_filters_and_limits_newest_first(store: Store) -> None:
    alert = await stored(store, event())
    for index in range(3):
        await decide(
            store, alert, new_run(f"r{index}", alert.id, target=f"t/{index}"), now=NOW + timedelta(seconds=index)
        )
    await decide(store, alert, new_run("bad", alert.id, status=RunStatus.FAILED), now=NOW + timedelta(seconds=9))
    assert [r.id for r in await store.list_runs(status=None, limit=2)] == ["bad", "r2"]
    assert [r.id for r in await store.list_runs(status=RunStatus.PLANNED, limit=10)] == ["r2", "r1", "r0"]
    assert await store.list_runs(status=RunStatus.SKIPPED, limit=10) == []


async def test_data_survives_reopening(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "s.db")
    await first.open()
    (outcome,) = await first.insert_events([event()], now=NOW)
    await first.close()
    second = SQLiteStore(tmp_path / "s.db")
    await second.open()
    try:
        assert (await second.insert_events([event()], now=NOW))[0].duplicate
        assert await second.get_event(outcome.event_id) is not None
    finally:
        await second.close()


# -- guardrails: the facts a verdict needs are the store's, read and written in one transaction ---------------


async def test_one_active_run_per_target(store: Store) -> None:
    alert = await stored(store, event())
    statuses = await decide(
        store, alert, new_run("a", alert.id), new_run("b", alert.id), new_run("c", alert.id, target="t/other")
    )
    assert statuses == [RunStatus.PLANNED, RunStatus.SKIPPED, RunStatus.PLANNED]
    skipped = await store.get_run("b")
    assert skipped is not None and skipped.guardrail == "target_busy" and "run a" in skipped.reason
    await store.claim_run(now=NOW)
    await store.finish_run("a", RunStatus.SUCCEEDED, "ok", [], now=NOW, epoch=1)
    assert await decide(store, alert, new_run("d", alert.id), now=NOW + timedelta(seconds=1)) == [RunStatus.PLANNED]


async def test_cooldown_and_budgets_count_earlier_runs(store: Store) -> None:
    alert = await stored(store, event())
    rule = {"cooldown": "10m", "budgets": ["2/1h"]}
    times = [
        NOW,
        NOW + timedelta(minutes=5),
        NOW + timedelta(minutes=11),
        NOW + timedelta(minutes=22),
        NOW + timedelta(minutes=61),
    ]
    results = []
    for index, at in enumerate(times):
        status = (await decide(store, alert, new_run(f"r{index}", alert.id), now=at, **rule))[0]
        results.append(status)
        run = await store.get_run(f"r{index}")
        assert run is not None
        if status is RunStatus.PLANNED:  # finish it so the target is free again
            await store.claim_run(now=at)
            await store.finish_run(run.id, RunStatus.SUCCEEDED, "ok", [], now=at, epoch=1)
    assert results == [RunStatus.PLANNED, RunStatus.SKIPPED, RunStatus.PLANNED, RunStatus.SKIPPED, RunStatus.PLANNED]
    guardrails = [run.guardrail for run in await store.list_runs(status=RunStatus.SKIPPED, limit=10)]
    assert guardrails == ["budget_exhausted", "cooldown"]


async def test_breaker_opens_escalates_and_closes_by_command(store: Store) -> None:
    settings = GuardrailSettings.model_validate({"breaker": {"max_runs": 2, "within": "1m", "quiet_period": "5m"}})
    alert = await stored(store, event())
    runs = [new_run(f"r{i}", alert.id, target=f"t/{i}") for i in range(4)]
    decision = await store.record_decision(alert, runs, [], guard=guard(NOW, settings), now=NOW)
    assert [d.status for d in decision.runs] == [
        RunStatus.PLANNED,
        RunStatus.PLANNED,
        RunStatus.SKIPPED,
        RunStatus.SKIPPED,
    ]
    assert (await store.breaker()).open
    escalations = await store.escalations(limit=10)
    assert [(e.trigger, e.run_id) for e in escalations] == [("breaker_open", "r2")]  # once, when it opened
    assert await store.close_breaker(actor="ops", now=NOW)
    assert not (await store.breaker()).open


async def test_resolved_alert_cancels_waiting_runs_of_the_same_alert(store: Store) -> None:
    alert = await stored(store, event())
    assert await decide(store, alert, new_run("late", alert.id), delay="5m") == [RunStatus.DELAYED]
    assert await store.claim_run(now=NOW + timedelta(minutes=1)) is None  # not due yet
    resolved = await stored(store, event(status="resolved"))
    decision = await store.record_decision(resolved, [], [], guard=guard(), now=NOW + timedelta(minutes=2))
    assert decision.cancelled == ["late"]
    run = await store.get_run("late")
    assert run is not None and (run.status, run.guardrail) == (RunStatus.SKIPPED, "alert_resolved")
    assert await store.claim_run(now=NOW + timedelta(minutes=10)) is None


async def test_delayed_run_is_claimed_when_due(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("late", alert.id), delay="5m")
    assert await store.claim_run(now=NOW + timedelta(minutes=4)) is None
    claimed = await store.claim_run(now=NOW + timedelta(minutes=5))
    assert claimed is not None and claimed.id == "late"


async def test_approval_granted_denied_and_expired(store: Store) -> None:
    alert = await stored(store, event())
    for index in range(3):
        await decide(store, alert, new_run(f"a{index}", alert.id, target=f"t/{index}"), approval="required")
    assert await store.claim_run(now=NOW) is None
    approved = await store.approve("a0", actor="alice", reason="go", now=NOW)
    assert approved is not None and approved.status is RunStatus.PLANNED and "alice" in approved.reason
    denied = await store.deny("a1", actor="bob", reason="not now", now=NOW)
    assert denied is not None and (denied.status, denied.guardrail) == (RunStatus.SKIPPED, "denied")
    with pytest.raises(NotAwaitingApproval):
        await store.approve("a1", actor="alice", reason="", now=NOW)
    assert await store.approve("nope", actor="alice", reason="", now=NOW) is None
    assert await store.expire_approvals(now=NOW + timedelta(minutes=59)) == []
    assert await store.expire_approvals(now=NOW + timedelta(hours=1)) == ["a2"]
    expired = await store.get_run("a2")
    assert expired is not None and expired.guardrail == "approval_expired"
    triggers = [(e.trigger, e.run_id) for e in await store.escalations(limit=10)]
    assert triggers == [("approval_expired", "a2")] + [("approval_requested", f"a{i}") for i in (2, 1, 0)]
    claimed = await store.claim_run(now=NOW)
    assert claimed is not None and claimed.id == "a0"
    kinds = [a.kind for a in await store.list_audit(run_id="a1", limit=5)]
    assert kinds == ["denied", "verdict_awaiting_approval"]


async def test_pause_all_and_per_rule(store: Store) -> None:
    alert = await stored(store, event())
    await store.set_pause("r", actor="ops", reason="migration", now=NOW)
    assert await decide(store, alert, new_run("p1", alert.id)) == [RunStatus.SKIPPED]
    assert [(p.scope, p.actor) for p in await store.pauses()] == [("r", "ops")]
    assert await store.clear_pause("r", actor="ops", now=NOW)
    assert not await store.clear_pause("r", actor="ops", now=NOW)
    await store.set_pause("all", actor="ops", reason="incident", now=NOW)
    assert await decide(store, alert, new_run("p2", alert.id)) == [RunStatus.SKIPPED]
    run = await store.get_run("p2")
    assert run is not None and run.guardrail == "paused" and "all automation" in run.reason


# -- escalation outbox ---------------------------------------------------------------------------------------


async def failed_run(store: Store, alert: AlertEvent, run_id: str = "r1") -> None:
    await decide(store, alert, new_run(run_id, alert.id))
    await store.claim_run(now=NOW)
    await store.finish_run(run_id, RunStatus.FAILED, "step 0 failed", [], now=NOW, epoch=1, escalation="run_failed")


async def test_a_failure_escalates_in_the_same_transaction_and_fans_out(store: Store) -> None:
    alert = await stored(store, event())
    await failed_run(store, alert)
    (escalation,) = await store.escalations(limit=5)
    assert (escalation.trigger, escalation.kind, escalation.run_id) == ("run_failed", "trigger", "r1")
    seen: list[tuple[str, dict[str, str] | None]] = []

    def choose(e: Any, ev: AlertEvent | None) -> list[str]:
        seen.append((e.trigger, ev.labels if ev else None))
        return ["slack", "pagerduty"]

    assert await store.fan_out(choose, now=NOW, limit=10) == [(escalation.id, ["slack", "pagerduty"])]
    assert seen == [("run_failed", {"alertname": "A", "namespace": "ns"})]
    assert await store.fan_out(choose, now=NOW, limit=10) == []  # once


async def test_deliveries_are_leased_retried_and_settled(store: Store) -> None:
    alert = await stored(store, event())
    await failed_run(store, alert)
    await store.fan_out(lambda e, ev: ["slack", "pagerduty"], now=NOW, limit=10)
    lease = timedelta(minutes=2)
    claimed = await store.claim_deliveries(now=NOW, limit=10, lease=lease)
    assert sorted(c.channel for c in claimed) == ["pagerduty", "slack"]
    assert all(c.run is not None and c.run.id == "r1" and c.attempts == 1 for c in claimed)
    assert await store.claim_deliveries(now=NOW, limit=10, lease=lease) == []  # leased
    slack = next(c for c in claimed if c.channel == "slack")
    pagerduty = next(c for c in claimed if c.channel == "pagerduty")
    await store.delivery_retry(slack.id, error="slack: ratelimited", next_attempt_at=NOW + timedelta(seconds=30))
    await store.delivery_sent(pagerduty.id, reference="autoremedy-x", now=NOW)
    assert await store.claim_deliveries(now=NOW + timedelta(seconds=29), limit=10, lease=lease) == []
    (again,) = await store.claim_deliveries(now=NOW + timedelta(seconds=30), limit=10, lease=lease)
    assert (again.channel, again.attempts) == ("slack", 2)
    await store.delivery_failed(again.id, error="slack: channel_not_found")
    states = {d.channel: (d.state, d.last_error) for d in await store.deliveries(limit=10)}
    assert states == {"slack": ("failed", "slack: channel_not_found"), "pagerduty": ("sent", None)}


async def test_a_crashed_senders_lease_expires(store: Store) -> None:
    alert = await stored(store, event())
    await failed_run(store, alert)
    await store.fan_out(lambda e, ev: ["slack"], now=NOW, limit=10)
    await store.claim_deliveries(now=NOW, limit=10, lease=timedelta(minutes=2))
    assert await store.claim_deliveries(now=NOW + timedelta(minutes=1), limit=10, lease=timedelta(minutes=2)) == []
    (taken_over,) = await store.claim_deliveries(now=NOW + timedelta(minutes=2), limit=10, lease=timedelta(minutes=2))
    assert taken_over.attempts == 2


async def test_resolve_follows_the_trigger_and_finds_its_thread(store: Store) -> None:
    alert = await stored(store, event())
    await failed_run(store, alert)
    await store.fan_out(lambda e, ev: ["slack", "pagerduty"], now=NOW, limit=10)
    for delivery in await store.claim_deliveries(now=NOW, limit=10, lease=timedelta(minutes=1)):
        await store.delivery_sent(delivery.id, reference=f"{delivery.channel}-ref", now=NOW)
    resolved = await stored(store, event(status="resolved"))
    await store.record_decision(resolved, [], [], guard=guard(), now=NOW)
    (resolve, _trigger) = await store.escalations(limit=5)
    assert (resolve.kind, resolve.trigger, resolve.rule) == ("resolve", "alert_resolved", "r")
    never_asked: list[str] = []
    fanned = await store.fan_out(lambda e, ev: never_asked or ["opsgenie"], now=NOW, limit=10)
    assert fanned == [(resolve.id, ["pagerduty", "slack"])]  # where the trigger went, not the policy
    claimed = {c.channel: c for c in await store.claim_deliveries(now=NOW, limit=10, lease=timedelta(minutes=1))}
    assert claimed["slack"].thread_reference == "slack-ref"
    assert claimed["slack"].escalation.kind == "resolve"
    resolved_again = await stored(store, event(status="resolved", starts_at="2026-11-26T23:00:00.000000Z"))
    await store.record_decision(resolved_again, [], [], guard=guard(), now=NOW)
    assert len(await store.escalations(limit=5)) == 2  # already resolved: nothing new


async def test_a_later_success_resolves_what_the_rule_escalated(store: Store) -> None:
    alert = await stored(store, event())
    await failed_run(store, alert, "r1")
    await decide(store, alert, new_run("r2", alert.id))
    await store.claim_run(now=NOW)
    await store.finish_run("r2", RunStatus.SUCCEEDED, "ok", [], now=NOW, epoch=1)
    (resolve, _) = await store.escalations(limit=5)
    assert (resolve.kind, resolve.trigger) == ("resolve", "fixed")


async def test_guardrail_notices_are_not_resolved_by_the_alert(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("a1", alert.id), approval="required")
    resolved = await stored(store, event(status="resolved"))
    await store.record_decision(resolved, [], [], guard=guard(), now=NOW)
    assert [e.kind for e in await store.escalations(limit=5)] == ["trigger"]


async def test_a_waiting_run_is_woken_by_its_resolved_alert(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("w1", alert.id))
    await store.claim_run(now=NOW)
    await store.suspend_run("w1", reason="waiting", wait_until=NOW + timedelta(hours=1), now=NOW, epoch=1)
    assert await store.claim_run(now=NOW + timedelta(minutes=5)) is None
    assert await store.resolution_of(alert.id) is None
    resolved = await stored(store, event(status="resolved"), now=NOW + timedelta(minutes=6))
    decision = await store.record_decision(resolved, [], [], guard=guard(), now=NOW + timedelta(minutes=6))
    assert decision.woken == ["w1"]
    assert await store.resolution_of(alert.id) == NOW + timedelta(minutes=6)
    claimed = await store.claim_run(now=NOW + timedelta(minutes=6))
    assert claimed is not None and claimed.id == "w1"


async def test_a_waiting_run_is_due_at_its_deadline_and_a_late_suspend_is_not_lost(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("w1", alert.id))
    await store.claim_run(now=NOW)
    await store.suspend_run("w1", reason="waiting", wait_until=NOW + timedelta(minutes=1), now=NOW, epoch=1)
    claimed = await store.claim_run(now=NOW + timedelta(minutes=1))
    assert claimed is not None and claimed.wait_until == NOW + timedelta(minutes=1)
    # The resolution arrives while the run is looking; suspending then puts it straight back to be claimed.
    await stored(store, event(status="resolved"))
    await store.suspend_run("w1", reason="waiting", wait_until=NOW + timedelta(hours=1), now=NOW, epoch=2)
    again = await store.claim_run(now=NOW + timedelta(minutes=2))
    assert again is not None and again.id == "w1"


async def test_retention_prunes_old_finished_records_only(store: Store) -> None:
    old = await stored(store, event("old"))
    await store.claim_event(now=NOW)
    await decide(store, old, new_run("old-run", old.id, fingerprint="old", target="t/old"))
    await store.claim_run(now=NOW)
    await store.finish_run(
        "old-run", RunStatus.SUCCEEDED, "ok", [AuditEntry("run_succeeded", "ok", "old-run")], now=NOW, epoch=1
    )
    later = NOW + timedelta(days=40)
    fresh = await stored(store, event("fresh"), now=later)
    await decide(store, fresh, new_run("fresh-run", fresh.id, fingerprint="fresh", target="t/fresh"), now=later)
    waiting = await stored(store, event("waiting"))
    await decide(
        store, waiting, new_run("held", waiting.id, fingerprint="waiting", target="t/held"), approval="required"
    )
    pruned = await store.prune(before=later - timedelta(days=30))
    assert pruned["runs"] == 1 and pruned["events"] == 1 and pruned["steps"] == 2
    assert await store.get_run("old-run") is None
    assert await store.get_run("fresh-run") is not None
    assert await store.get_run("held") is not None  # not finished: kept, whatever its age
    assert await store.get_event(old.id) is None and await store.get_event(fresh.id) is not None


async def test_record_audit_stores_entries_without_a_run(store: Store) -> None:
    entry = AuditEntry("chatops", "/autoremedy status: ok", actor="slack:U1", data={"user": "U1", "allowed": True})
    await store.record_audit([entry], now=NOW)
    (found,) = await store.list_audit(run_id=None, limit=10)
    assert (found.kind, found.actor, found.run_id, found.data) == ("chatops", "slack:U1", None, entry.data)
    assert found.at == NOW


async def test_a_request_signature_is_remembered_once_and_forgotten_when_old(store: Store) -> None:
    keep = timedelta(minutes=10)
    assert await store.remember_request("v0=abc", now=NOW, keep=keep)
    assert not await store.remember_request("v0=abc", now=NOW + timedelta(minutes=1), keep=keep)
    assert await store.remember_request("v0=def", now=NOW, keep=keep)
    # Past `keep`, the old signature is pruned (its timestamp is refused as stale before the store is asked).
    assert await store.remember_request("v0=abc", now=NOW + timedelta(minutes=11), keep=keep)


async def test_fingerprint_audit_has_the_verdicts_and_the_runs_entries(store: Store) -> None:
    alert = await stored(store, event("f1"))
    other = await stored(store, event("f2"))
    await decide(store, alert, new_run("r1", alert.id, fingerprint="f1"))
    await decide(store, other, new_run("r2", other.id, fingerprint="f2", target="t/y"))
    await store.claim_run(now=NOW)
    await store.finish_run("r1", RunStatus.SUCCEEDED, "ok", [AuditEntry("run_succeeded", "ok", "r1")], now=NOW, epoch=1)
    entries = await store.fingerprint_audit("f1", limit=10)
    assert [e.kind for e in reversed(entries)] == ["verdict_allowed", "run_succeeded"]
    assert entries[-1].data["rule"] == "r" and entries[-1].data["guardrail"] == "allowed"
    assert await store.fingerprint_audit("nope", limit=10) == []


# -- fenced ownership ---------------------------------------------------------------------------------------------


async def _taken_over(stores: tuple[Store, Store]) -> tuple[Store, Store, int]:
    """Instance a claims r1 and stops heartbeating (a store outage, a stall); instance b takes it over."""
    a, b = stores
    alert = await stored(a, event())
    await decide(a, alert, new_run("r1", alert.id))
    claimed = await a.claim_run(now=NOW)
    assert claimed is not None and claimed.epoch == 1
    taken = await b.claim_run(now=NOW + timedelta(minutes=10))
    assert taken is not None and taken.id == "r1" and taken.epoch == 2
    return a, b, claimed.epoch


async def test_a_stale_owners_step_and_outcome_writes_are_refused(stores: tuple[Store, Store]) -> None:
    a, b, stale = await _taken_over(stores)
    run = await b.get_run("r1")
    assert run is not None
    step = run.steps[0].model_copy(update={"outcome": StepOutcome.DONE, "started_at": NOW, "finished_at": NOW})
    with pytest.raises(RunTakenOver):
        await a.update_step("r1", step, epoch=stale)
    with pytest.raises(RunTakenOver):
        await a.finish_run("r1", RunStatus.SUCCEEDED, "ok", [AuditEntry("run_succeeded", "ok", "r1")], now=NOW, epoch=1)
    with pytest.raises(RunTakenOver):
        await a.suspend_run("r1", reason="waiting", wait_until=NOW + timedelta(hours=1), now=NOW, epoch=stale)
    kept = await b.get_run("r1")
    assert kept is not None and kept.status is RunStatus.RUNNING and kept.steps[0].outcome is StepOutcome.PENDING
    assert "run_succeeded" not in [entry.kind for entry in await b.list_audit(run_id="r1", limit=10)]
    await b.update_step("r1", step, epoch=2)  # the current owner's writes go through
    await b.finish_run("r1", RunStatus.SUCCEEDED, "ok", [], now=NOW, epoch=2)
    done = await b.get_run("r1")
    assert done is not None and done.status is RunStatus.SUCCEEDED and done.steps[0].outcome is StepOutcome.DONE


async def test_the_heartbeat_returns_only_the_runs_still_owned(stores: tuple[Store, Store]) -> None:
    a, b, _ = await _taken_over(stores)
    assert await a.heartbeat(now=NOW + timedelta(minutes=10)) == {}
    assert await b.heartbeat(now=NOW + timedelta(minutes=10)) == {"r1": 2}
    taken = [entry for entry in await b.list_audit(run_id="r1", limit=5) if entry.kind == "run_taken_over"]
    assert len(taken) == 1 and taken[0].data["epoch"] == 2


async def test_an_instance_never_takes_over_a_run_it_still_executes(stores: tuple[Store, Store]) -> None:
    a, b = stores
    alert = await stored(a, event())
    await decide(a, alert, new_run("r1", alert.id))
    assert await a.claim_run(now=NOW) is not None
    assert await a.claim_run(now=NOW + timedelta(hours=1)) is None  # stale heartbeat, but it is ours
    later = await b.claim_run(now=NOW + timedelta(hours=1))
    assert later is not None and later.epoch == 2


# -- the web console: sessions and the pages' reads -----------------------------------------------------------


def console_session(key: str, *, expires_at: datetime, scopes: frozenset[str] = frozenset({"read"})) -> ConsoleSession:
    return ConsoleSession(key, "token:alice", scopes, f"csrf-{key}", NOW, expires_at)


async def test_console_sessions_expire_end_and_are_pruned(store: Store) -> None:
    hour = timedelta(hours=1)
    await store.create_console_session(console_session("a", expires_at=NOW + hour), now=NOW)
    await store.create_console_session(
        console_session("b", expires_at=NOW + 2 * hour, scopes=frozenset({"read", "control"})), now=NOW
    )
    found = await store.console_session("b", now=NOW)
    assert found is not None
    assert (found.principal, found.scopes, found.csrf_token) == ("token:alice", {"read", "control"}, "csrf-b")
    assert found.expires_at == NOW + 2 * hour
    assert await store.console_session("a", now=NOW + hour) is None  # expired at its instant
    assert await store.console_session("unknown", now=NOW) is None
    await store.end_console_session("b")
    assert await store.console_session("b", now=NOW) is None
    # a later sign-in prunes the expired one: it cannot come back even if the clock were wrong
    await store.create_console_session(console_session("c", expires_at=NOW + 3 * hour), now=NOW + hour)
    assert await store.console_session("a", now=NOW) is None
    assert await store.console_session("c", now=NOW + hour) is not None


async def test_search_runs_filters_by_status_rule_and_target(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("a", alert.id, target="t/1", rule="r"), now=NOW)
    await decide(store, alert, new_run("b", alert.id, target="t/2", rule="r"), now=NOW + timedelta(seconds=1))
    await decide(
        store, alert, new_run("c", alert.id, target="t/1", status=RunStatus.FAILED), now=NOW + timedelta(seconds=2)
    )

    async def ids(**filters: Any) -> list[str]:
        query = {"status": None, "rule": None, "target": None, "limit": 10} | filters
        return [run.id for run in await store.search_runs(**query)]

    assert await ids() == ["c", "b", "a"]
    assert await ids(target="t/1") == ["c", "a"]
    assert await ids(status=RunStatus.PLANNED, target="t/1") == ["a"]
    assert await ids(rule="other") == []
    assert await ids(limit=1) == ["c"]
    (found,) = await store.search_runs(status=None, rule=None, target="t/2", limit=5)
    assert [step.name for step in found.steps] == ["s0", "s1"]


async def test_status_header_reads(store: Store) -> None:
    assert await store.oldest_pending() is None
    first = await stored(store, event("f1"), now=NOW)
    await stored(store, event("f2"), now=NOW + timedelta(minutes=1))
    assert await store.oldest_pending() == NOW
    await store.claim_event(now=NOW)
    await decide(store, first, new_run("early", first.id, target="t/1"), now=NOW - timedelta(hours=2))
    await decide(store, first, new_run("late", first.id, target="t/2"), now=NOW)
    await decide(store, first, new_run("bad", first.id, target="t/3", status=RunStatus.FAILED), now=NOW)
    assert await store.oldest_pending() == NOW + timedelta(minutes=1)
    assert await store.runs_created_since(NOW - timedelta(hours=1)) == {"planned": 1, "failed": 1}


async def test_recent_activity_pairs_events_with_their_runs(store: Store) -> None:
    acted = await stored(store, event("f1"))
    ignored = await stored(store, event("f2"))
    waiting = await stored(store, event("f3"))
    await store.claim_event(now=NOW)
    await decide(store, acted, new_run("r1", acted.id), now=NOW)
    await store.claim_event(now=NOW)
    await store.record_decision(ignored, [], [], guard=guard(), now=NOW)
    activity = await store.recent_activity(limit=10)
    expected = [(waiting.id, "pending"), (ignored.id, "no_rule_matched"), (acted.id, "done")]
    assert [(a.event.id, a.state) for a in activity] == expected
    assert [[run.id for run in a.runs] for a in activity] == [[], [], ["r1"]]
    assert [a.event.fingerprint for a in await store.recent_activity(limit=1)] == ["f3"]


async def test_counted_runs_since_are_the_ones_guardrails_count(store: Store) -> None:
    alert = await stored(store, event())
    await decide(store, alert, new_run("old", alert.id, target="t/1"), now=NOW - timedelta(hours=2))
    await decide(store, alert, new_run("new", alert.id, target="t/2"), now=NOW)
    await decide(store, alert, new_run("unrendered", alert.id, target="t/3", status=RunStatus.FAILED), now=NOW)
    assert [run.id for run in await store.counted_runs_since(NOW - timedelta(hours=1), limit=10)] == ["new"]


async def test_escalations_of_run_show_each_channels_delivery(store: Store) -> None:
    alert = await stored(store, event())
    await failed_run(store, alert)
    (queued,) = await store.escalations_of_run("r1")
    assert (queued.trigger, queued.kind, queued.channel, queued.state) == ("run_failed", "trigger", None, None)
    await store.fan_out(lambda e, ev: ["slack", "pagerduty"], now=NOW, limit=10)
    claimed = await store.claim_deliveries(now=NOW, limit=10, lease=timedelta(minutes=1))
    sent = next(c for c in claimed if c.channel == "slack")
    await store.delivery_sent(sent.id, reference="ts-1", now=NOW)
    rows = await store.escalations_of_run("r1")
    assert [(r.channel, r.state, r.attempts) for r in rows] == [("pagerduty", "sending", 1), ("slack", "sent", 1)]
    assert rows[1].sent_at == NOW and rows[0].detail == queued.detail
    assert await store.escalations_of_run("other") == []


# -- decisions in batches ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def store_pair(
    request: pytest.FixtureRequest, tmp_path: Path, shared_postgres: PostgresServer
) -> AsyncIterator[tuple[Store, Store]]:
    """Two fresh stores of one backend: one records a batch at once, the other the same decisions one at a time."""
    pair: list[Store] = []
    for name in ("batch", "single"):
        if request.param == "postgres":
            pair.append(PostgresStore(await fresh_database(shared_postgres)))
        else:
            pair.append(SQLiteStore(tmp_path / f"{name}.db"))
    for backend in pair:
        await backend.open()
    try:
        yield pair[0], pair[1]
    finally:
        for backend in pair:
            await backend.close()


MIXED_RULES = {
    "cool": {"cooldown": "1h"},
    "budget": {"budgets": ["2/1h"]},
    "delayed": {"delay": "10m"},
    "plain": {},
}
MIXED_SETTINGS = GuardrailSettings.model_validate({"breaker": {"max_runs": 7, "within": "1h", "quiet_period": "1h"}})


def mixed_guard(now: datetime) -> Guard:
    rules = {name: Rule.model_validate({"name": name, "playbook": "p", **spec}) for name, spec in MIXED_RULES.items()}
    return Guard(rules=rules, windows=(), settings=MIXED_SETTINGS, labels={}, now=now)


def mixed_run(run_id: str, alert: AlertEvent, rule: str, target: str, **fields: Any) -> NewRun:
    return replace(new_run(run_id, alert.id, rule=rule, target=target, fingerprint=alert.fingerprint), **fields)


async def history(store: Store) -> None:
    """Before the batch: a finished run of `cool` on t/1 and of `budget` on t/2, and a delayed run on t/4."""
    before = NOW - timedelta(minutes=30)
    for fingerprint, rule, target in (("h1", "cool", "t/1"), ("h2", "budget", "t/2"), ("h3", "delayed", "t/4")):
        alert = await stored(store, event(fingerprint), now=before)
        await store.claim_events(limit=10, now=before)
        run = mixed_run(f"{fingerprint}-run", alert, rule, target)
        await store.record_decisions([EventDecision(alert, [run], [], mixed_guard(before))], now=before)
        if rule != "delayed":
            claimed = await store.claim_run(now=before)
            assert claimed is not None
            await store.finish_run(run.id, RunStatus.SUCCEEDED, "ok", [], now=before, epoch=claimed.epoch)


async def mixed_batch(store: Store) -> list[EventDecision]:
    """The table of cases, in order: each line is an event, its runs, and what the guardrails should say."""
    cases: list[tuple[NewEvent, list[tuple[str, str, dict[str, Any]]]]] = [
        (event("c1"), [("cool", "t/1", {})]),  # cooldown: h1 ran 30 minutes ago
        (event("b1"), [("budget", "t/2", {})]),  # budget: 1 of 2 used
        (event("b2"), [("budget", "t/2", {})]),  # target busy: b1's run holds t/2
        (event("q1"), [("plain", "t/4", {})]),  # target busy: h3's delayed run holds t/4
        (event("h3", status="resolved"), []),  # cancels h3's delayed run: t/4 is free again
        (event("p1"), [("plain", "t/4", {})]),  # allowed on the freed target
        (event("m1"), [("plain", "t/5", {}), ("delayed", "t/6", {})]),  # a rule that continues: two runs
        (event("f1"), [("plain", "t/7", {"status": RunStatus.FAILED, "reason": "plan not rendered: x"})]),
        (event("n1"), []),  # no rule matched
        (event("x1"), [("plain", "t/8", {})]),  # the breaker opens: 7 counted runs within the hour
        (event("l1"), [("plain", "t/9", {"mutates": False})]),  # a log-only run: the breaker does not block it
        (event("x2"), [("plain", "t/10", {})]),  # still open: skipped, not escalated again
    ]
    await store.insert_events([new for new, _ in cases], now=NOW)
    claimed = await store.claim_events(limit=100, now=NOW)
    assert [(e.fingerprint, e.status) for e in claimed] == [(new.fingerprint, new.status) for new, _ in cases]
    batch = []
    for alert, (_, runs) in zip(claimed, cases, strict=True):
        made = [
            mixed_run(f"{alert.fingerprint}-{i}", alert, rule, target, **f) for i, (rule, target, f) in enumerate(runs)
        ]
        audit = [
            AuditEntry("run_failed", r.reason, r.id, alert.fingerprint) for r in made if r.status is RunStatus.FAILED
        ]
        batch.append(EventDecision(alert, made, audit, mixed_guard(NOW)))
    return batch


async def outcome(store: Store, batch: list[EventDecision]) -> dict[str, Any]:
    runs = await store.list_runs(status=None, limit=100)
    events = [await store.get_event(item.event.id) for item in batch]
    return {
        # Who executed the history's runs is each store's own instance id: the rest must be equal.
        "runs": sorted((run.model_dump(exclude={"owner"}) for run in runs), key=lambda r: r["id"]),
        "audit": [
            (a.kind, a.run_id, a.fingerprint, a.message, a.data) for a in await store.list_audit(run_id=None, limit=500)
        ],
        "escalations": [
            (e.run_id, e.fingerprint, e.rule, e.trigger, e.detail, e.kind) for e in await store.escalations(limit=100)
        ],
        "events": [(e.fingerprint, e.state) for e in events if e is not None],
        "breaker": await store.breaker(),
    }


async def test_a_batch_records_exactly_what_one_at_a_time_would(store_pair: tuple[Store, Store]) -> None:
    batched, single = store_pair
    results = []
    for store, at_once in ((batched, True), (single, False)):
        await history(store)
        batch = await mixed_batch(store)
        if at_once:
            decisions = await store.record_decisions(batch, now=NOW)
        else:
            decisions = [(await store.record_decisions([item], now=NOW))[0] for item in batch]
        results.append(([(d.runs, d.cancelled, d.woken) for d in decisions], await outcome(store, batch)))
    assert results[0][0] == results[1][0]  # the decisions returned
    for key, value in results[0][1].items():  # what the store holds, part by part
        assert value == results[1][1][key], key
    decisions, found = results[0]
    verdicts = [[(r.run_id, r.verdict.reason if r.verdict else None) for r in runs] for runs, _, _ in decisions]
    assert verdicts == [
        [("c1-0", "cooldown")],
        [("b1-0", "allowed")],
        [("b2-0", "target_busy")],
        [("q1-0", "target_busy")],
        [],
        [("p1-0", "allowed")],
        [("m1-0", "allowed"), ("m1-1", "delayed")],
        [("f1-0", None)],
        [],
        [("x1-0", "breaker_open")],
        [("l1-0", "allowed")],
        [("x2-0", "breaker_open")],
    ]
    assert decisions[4][1] == ["h3-run"]  # the resolved alert cancelled the delayed run
    assert [trigger for _, _, _, trigger, _, _ in found["escalations"]] == [
        "breaker_open",
        "plan_failed",
    ]  # newest first
    states = dict(found["events"])
    assert (states["n1"], states["c1"], states["h3"]) == (
        EventState.NO_RULE_MATCHED,
        EventState.DONE,
        EventState.NO_RULE_MATCHED,
    )
    assert not any(kind == "no_rule_matched" for kind, *_ in found["audit"])  # no audit row for unmatched alerts


async def test_a_failed_decision_is_requeued_then_dead_lettered_with_an_escalation(store: Store) -> None:
    alert = await stored(store, event("poison"))
    for attempt in (1, 2):
        (claimed,) = await store.claim_events(limit=10, now=NOW)
        dead = await store.record_decision_failure(
            claimed, f"boom {attempt}\x00", permanent=False, max_attempts=3, rule="r", now=NOW
        )
        assert not dead and await store.pending_events() == 1
    (claimed,) = await store.claim_events(limit=10, now=NOW)
    assert await store.record_decision_failure(claimed, "boom 3", permanent=False, max_attempts=3, rule="r", now=NOW)
    assert await store.claim_events(limit=10, now=NOW) == [] and await store.pending_events() == 0
    found = await store.get_event(alert.id)
    assert found is not None and found.state is EventState.DEAD
    count, dead_events = await store.dead_events(limit=5)
    assert count == 1 and (dead_events[0].id, dead_events[0].attempts, dead_events[0].error) == (alert.id, 3, "boom 3")
    (entry,) = await store.fingerprint_audit("poison", limit=5)
    assert entry.kind == "event_dead_lettered" and "boom 3" in entry.message and entry.data["attempts"] == 3
    (escalation,) = await store.escalations(limit=5)
    assert (escalation.trigger, escalation.fingerprint, escalation.rule) == ("plan_failed", "poison", "r")
    # A permanent failure is dead-lettered at once.
    other = await stored(store, event("other"))
    (claimed,) = await store.claim_events(limit=10, now=NOW)
    assert await store.record_decision_failure(claimed, "bad data", permanent=True, max_attempts=3, rule="-", now=NOW)
    assert (await store.dead_events(limit=5))[0] == 2 and other.id != alert.id


async def test_claims_take_the_oldest_events_up_to_the_limit(store: Store) -> None:
    ids = [o.event_id for o in await store.insert_events([event(f"e{i}") for i in range(5)], now=NOW)]
    assert await store.oldest_pending() == NOW
    first = await store.claim_events(limit=3, now=NOW)
    rest = await store.claim_events(limit=3, now=NOW)
    assert [e.id for e in first] == ids[:3] and [e.id for e in rest] == ids[3:]
    assert {e.state for e in first} == {EventState.PROCESSING}
    assert await store.oldest_pending() is None


async def test_a_stale_owners_step_writes_with_its_outcome_are_refused_together(stores: tuple[Store, Store]) -> None:
    a, b, stale = await _taken_over(stores)
    run = await b.get_run("r1")
    assert run is not None
    first, second = (
        step.model_copy(update={"outcome": StepOutcome.DONE, "started_at": NOW, "finished_at": NOW})
        for step in run.steps
    )
    with pytest.raises(RunTakenOver):
        await a.update_steps("r1", [first, second], epoch=stale)
    with pytest.raises(RunTakenOver):
        await a.finish_run("r1", RunStatus.SUCCEEDED, "ok", [], now=NOW, epoch=stale, steps=[second])
    kept = await b.get_run("r1")
    assert kept is not None and kept.status is RunStatus.RUNNING
    assert [s.outcome for s in kept.steps] == [StepOutcome.PENDING, StepOutcome.PENDING]
    await b.update_steps("r1", [first], epoch=2)
    await b.finish_run("r1", RunStatus.SUCCEEDED, "ok", [], now=NOW, epoch=2, steps=[second])
    done = await b.get_run("r1")
    assert done is not None and done.status is RunStatus.SUCCEEDED
    assert [s.outcome for s in done.steps] == [StepOutcome.DONE, StepOutcome.DONE]


async def test_due_runs_are_claimed_several_at_once_oldest_first(store: Store) -> None:
    for index in range(3):
        alert = await stored(store, event(f"f{index}"))
        await decide(
            store, alert, new_run(f"r{index}", alert.id, target=f"t/{index}"), now=NOW + timedelta(seconds=index)
        )
    first = await store.claim_runs(limit=2, now=NOW + timedelta(minutes=1))
    assert [(run.id, run.status, len(run.steps)) for run in first] == [
        ("r0", RunStatus.RUNNING, 2),
        ("r1", RunStatus.RUNNING, 2),
    ]
    rest = await store.claim_runs(limit=5, now=NOW + timedelta(minutes=1))
    assert [run.id for run in rest] == ["r2"]
    assert await store.claim_runs(limit=5, now=NOW + timedelta(minutes=1)) == []
