"""The decider on a manual clock over a real SQLite store: batches, the poll that finds events nobody woke it
for, and an event whose decision fails dead-lettered while the rest of its batch is recorded."""

from __future__ import annotations

from pathlib import Path

from autoremedy.models.runs import RunStatus
from tests.support.engine_parts import Engine, engine_parts, event
from tests.support.procs import wait_for

PLAYBOOKS = [
    {"name": "fine", "target": "{{ alert.fingerprint }}", "steps": [{"action": "test.script"}]},
    {"name": "poison", "target": "{{ alert.fingerprint }}", "steps": [{"action": "test.other"}]},
]


def _buggy(action: str) -> bool:
    if action == "test.other":
        raise RuntimeError("a bug in deciding")
    return False


async def _insert(engine: Engine, alertname: str, count: int) -> None:
    await engine.store.insert_events([event(alertname) for _ in range(count)], now=engine.clock.now())


async def test_a_batch_takes_at_most_batch_size_events_and_the_queue_drains_batch_by_batch(tmp_path: Path) -> None:
    async with engine_parts(tmp_path, PLAYBOOKS, batch_size=2) as engine:
        await _insert(engine, "fine", 5)
        assert [await engine.decider.decide_batch() for _ in range(4)] == [2, 2, 1, 0]
        runs = await engine.store.list_runs(status=None, limit=10)
        assert len(runs) == 5 and {run.status for run in runs} == {RunStatus.PLANNED}
        assert await engine.store.pending_events() == 0


async def test_the_decider_loop_polls_on_its_clock_for_events_nobody_woke_it_for(tmp_path: Path) -> None:
    async with engine_parts(tmp_path, PLAYBOOKS) as engine:
        planned: list[int] = []
        engine.decider.on_planned = lambda: planned.append(1)
        engine.decider.start()
        try:
            await engine.clock.sleeping(2.0)  # the queue was empty: it waits for a wake-up or the poll interval
            await _insert(engine, "fine", 3)  # committed by another replica: no wake-up here
            await engine.clock.advance(1.9)
            assert await engine.store.pending_events() == 3
            await engine.clock.advance(0.1)
            await wait_for(lambda: planned == [1], timeout=10, message="the poll decided the events")
            assert await engine.store.pending_events() == 0
        finally:
            await engine.decider.stop()


async def test_an_event_that_cannot_be_decided_is_dead_lettered_and_its_batch_recorded(tmp_path: Path) -> None:
    async with engine_parts(tmp_path, PLAYBOOKS, action_mutates=_buggy) as engine:
        await _insert(engine, "fine", 2)
        await _insert(engine, "poison", 1)
        await _insert(engine, "fine", 1)
        assert await engine.decider.decide_batch() == 4
        runs = await engine.store.list_runs(status=None, limit=10)
        assert sorted(run.rule for run in runs) == ["fine"] * 3
        count, dead = await engine.store.dead_events(limit=10)
        assert count == 1 and [e.alertname for e in dead] == ["poison"]
        assert "a bug in deciding" in dead[0].error
        escalations = await engine.store.escalations(limit=5)
        assert [e.trigger for e in escalations] == ["plan_failed"]
        assert "a bug in deciding" in escalations[0].detail
        failures = engine.metrics.registry.get_sample_value("autoremedy_decision_failures_total")
        assert failures == 1.0
