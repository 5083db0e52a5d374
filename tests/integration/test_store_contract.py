"""One contract suite for every store backend: what the engine and the API rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoremedy.models.events import NewEvent
from autoremedy.models.runs import RunStatus, StepOutcome
from autoremedy.store.base import AuditEntry, NewRun, NewStep, Store
from autoremedy.store.sqlite import SQLiteStore

NOW = datetime(2026, 11, 26, 22, 15, tzinfo=UTC)


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = SQLiteStore(tmp_path / "store.db")
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


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


def new_run(run_id: str, event_id: int, status: RunStatus = RunStatus.PLANNED, steps: int = 2) -> NewRun:
    return NewRun(
        id=run_id,
        event_id=event_id,
        status=status,
        reason="planned",
        rule="r",
        playbook="p",
        target="t/x",
        fingerprint="f1",
        alert_status="firing",
        dry_run=False,
        steps=[NewStep(i, f"s{i}", "log", {"message": str(i)}) for i in range(steps)],
    )


async def test_duplicate_key_is_counted_not_stored(store: Store) -> None:
    first = await store.insert_events([event(), event("f2")], now=NOW)
    again = await store.insert_events([event(), event(status="resolved")], now=NOW)
    assert [o.duplicate for o in first] == [False, False]
    assert [o.duplicate for o in again] == [True, False]
    assert again[0].event_id == first[0].event_id
    stored = await store.get_event(first[0].event_id)
    assert stored is not None and stored.deliveries == 2
    assert await store.pending_events() == 3


async def test_events_are_claimed_once_in_arrival_order(store: Store) -> None:
    ids = [o.event_id for o in await store.insert_events([event("a"), event("b")], now=NOW)]
    first, second, none = await store.claim_event(), await store.claim_event(), await store.claim_event()
    assert first is not None and second is not None
    assert [first.id, second.id] == ids
    assert none is None
    assert first.labels == {"alertname": "A", "namespace": "ns"}


async def test_decision_marks_event_done_and_creates_runs_atomically(store: Store) -> None:
    (outcome,) = await store.insert_events([event()], now=NOW)
    claimed = await store.claim_event()
    assert claimed is not None
    audit = [AuditEntry("run_planned", "planned", "r1", "f1")]
    await store.record_decision(outcome.event_id, [new_run("r1", outcome.event_id)], audit, now=NOW)
    assert await store.pending_events() == 0
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.PLANNED
    assert [s.inputs for s in run.steps] == [{"message": "0"}, {"message": "1"}]
    assert [a.kind for a in await store.list_audit(run_id="r1", limit=10)] == ["run_planned"]


async def test_a_failing_decision_leaves_the_event_queued(store: Store) -> None:
    (outcome,) = await store.insert_events([event()], now=NOW)
    await store.claim_event()
    duplicate_ids = [new_run("same", outcome.event_id), new_run("same", outcome.event_id)]
    with pytest.raises(Exception, match="sqlite"):
        await store.record_decision(outcome.event_id, duplicate_ids, [], now=NOW)
    assert await store.get_run("same") is None
    recovery = await store.recover(reason="restart", now=NOW)
    assert recovery.requeued_events == 1
    assert await store.claim_event() is not None


async def test_run_lifecycle(store: Store) -> None:
    (outcome,) = await store.insert_events([event()], now=NOW)
    await store.record_decision(outcome.event_id, [new_run("r1", outcome.event_id)], [], now=NOW)
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
    await store.update_step("r1", step)
    await store.finish_run("r1", RunStatus.FAILED, "step 1 failed", [AuditEntry("run_failed", "x", "r1")], now=NOW)
    done = await store.get_run("r1")
    assert done is not None
    assert (done.status, done.reason, done.finished_at) == (RunStatus.FAILED, "step 1 failed", NOW)
    assert done.steps[0].attempts == 2 and done.steps[0].result == {"status": 200}
    assert done.steps[1].outcome is StepOutcome.NOT_RUN


async def test_final_runs_are_not_claimed(store: Store) -> None:
    (outcome,) = await store.insert_events([event()], now=NOW)
    runs = [new_run("dry", outcome.event_id, RunStatus.DRY_RUN), new_run("bad", outcome.event_id, RunStatus.FAILED)]
    await store.record_decision(outcome.event_id, runs, [], now=NOW)
    assert await store.claim_run(now=NOW) is None
    dry = await store.get_run("dry")
    assert dry is not None and dry.finished_at == NOW
    assert {s.outcome for s in dry.steps} == {StepOutcome.NOT_RUN}


async def test_recover_requeues_events_and_interrupts_running_runs(store: Store) -> None:
    ids = [o.event_id for o in await store.insert_events([event("a"), event("b")], now=NOW)]
    await store.claim_event()
    await store.record_decision(ids[1], [new_run("r1", ids[1])], [], now=NOW)
    await store.claim_run(now=NOW)
    recovery = await store.recover(reason="crashed", now=NOW)
    assert recovery.requeued_events == 1
    assert recovery.interrupted_runs == ["r1"]
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.reason) == (RunStatus.INTERRUPTED, "crashed")
    assert [a.kind for a in await store.list_audit(run_id="r1", limit=5)] == ["run_interrupted"]
    claimed = await store.claim_event()
    assert claimed is not None and claimed.id == ids[0]


async def test_list_runs_filters_and_limits_newest_first(store: Store) -> None:
    (outcome,) = await store.insert_events([event()], now=NOW)
    for index in range(3):
        await store.record_decision(
            outcome.event_id, [new_run(f"r{index}", outcome.event_id)], [], now=NOW + timedelta(seconds=index)
        )
    await store.record_decision(
        outcome.event_id, [new_run("d", outcome.event_id, RunStatus.DRY_RUN)], [], now=NOW + timedelta(seconds=9)
    )
    assert [r.id for r in await store.list_runs(status=None, limit=2)] == ["d", "r2"]
    assert [r.id for r in await store.list_runs(status=RunStatus.PLANNED, limit=10)] == ["r2", "r1", "r0"]
    assert await store.list_runs(status=RunStatus.FAILED, limit=10) == []


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
