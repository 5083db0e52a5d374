"""The worker on a manual clock over a real SQLite store: bounded concurrency, heartbeats on schedule, and a run
another instance took over stopped here. Time moves only when the test moves it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from autoremedy.actions.base import ActionResult
from autoremedy.engine.worker import Upkeep, Worker
from autoremedy.models.runs import RunStatus
from autoremedy.store.sqlite import SQLiteStore
from tests.support.engine_parts import Engine, engine_parts
from tests.support.procs import wait_for

HEARTBEAT = 5.0
PLAYBOOKS = [
    {"name": "hold", "target": "{{ alert.fingerprint }}", "steps": [{"action": "test.script", "timeout": "10m"}]}
]


@asynccontextmanager
async def _worker(engine: Engine, *, concurrency: int) -> AsyncIterator[Worker]:
    worker = Worker(
        store=engine.store,
        executor=engine.executor,
        rules=lambda: engine.ruleset,
        metrics=engine.metrics,
        concurrency=concurrency,
        poll_interval=2.0,
        upkeep=Upkeep(heartbeat_interval=timedelta(seconds=HEARTBEAT)),
        clock=engine.clock,
    )
    worker.start()
    try:
        yield worker
    finally:
        if engine.script.hang is not None:
            engine.script.hang.set()
        await worker.stop(grace=5)


async def _statuses(engine: Engine) -> list[str]:
    return sorted(run.status.value for run in await engine.store.list_runs(status=None, limit=10))


async def test_the_worker_runs_at_most_its_concurrency_and_takes_the_next_when_a_slot_frees(tmp_path: Path) -> None:
    async with engine_parts(tmp_path, PLAYBOOKS) as engine:
        release = engine.script.hang = asyncio.Event()
        await engine.planned_runs("hold", count=3)
        async with _worker(engine, concurrency=2):
            await wait_for(lambda: engine.script.calls.get("default") == 2, timeout=10, message="two runs started")
            assert await _statuses(engine) == ["planned", "running", "running"]  # the third waits for a slot
            release.set()

            async def all_succeeded() -> bool:
                return await _statuses(engine) == ["succeeded"] * 3

            await wait_for(all_succeeded, timeout=10, message="the third ran once a slot freed")
        assert engine.script.calls == {"default": 3}


async def test_heartbeats_on_schedule_keep_a_long_run_from_being_taken_over(tmp_path: Path) -> None:
    async with engine_parts(tmp_path, PLAYBOOKS) as engine:
        engine.script.hang = asyncio.Event()
        await engine.planned_runs("hold")
        other = SQLiteStore(tmp_path / "store.db", takeover_after=timedelta(seconds=3 * HEARTBEAT))
        await other.open()
        try:
            async with _worker(engine, concurrency=1):
                await wait_for(lambda: engine.script.calls.get("default") == 1, timeout=10, message="run started")
                for _ in range(6):  # 30 s: twice the takeover delay; a heartbeat every 5 s keeps the run ours
                    await engine.clock.sleeping(HEARTBEAT)
                    await engine.clock.advance(HEARTBEAT)
                await engine.clock.sleeping(HEARTBEAT)
                assert await other.claim_run(now=engine.clock.now()) is None
                (run,) = await engine.store.list_runs(status=None, limit=1)
                assert run.status is RunStatus.RUNNING and run.epoch == 1
        finally:
            await other.close()


async def test_a_run_another_instance_took_over_is_cancelled_here_at_the_next_heartbeat(tmp_path: Path) -> None:
    async with engine_parts(tmp_path, PLAYBOOKS) as engine:
        engine.script.hang = asyncio.Event()
        await engine.planned_runs("hold")
        other = SQLiteStore(tmp_path / "store.db", takeover_after=timedelta(seconds=3 * HEARTBEAT))
        await other.open()
        try:
            async with _worker(engine, concurrency=1):
                await wait_for(lambda: engine.script.calls.get("default") == 1, timeout=10, message="run started")
                # The other instance's clock says the heartbeats stopped long ago: it takes the run over.
                taken = await other.claim_run(now=engine.clock.now() + timedelta(minutes=1))
                assert taken is not None and taken.epoch == 2
                await engine.clock.sleeping(HEARTBEAT)
                await engine.clock.advance(HEARTBEAT)  # this instance's next heartbeat finds the run gone
                await wait_for(lambda: _lost(engine) == 1.0, timeout=10, message="the run was stopped here")
                assert engine.script.calls == {"default": 1}  # cancelled, never finished here
                audit = await engine.store.list_audit(run_id=taken.id, limit=10)
                assert "run_lost" in [entry.kind for entry in audit]
                current = await engine.store.get_run(taken.id)
                assert current is not None and (current.status, current.epoch) == (RunStatus.RUNNING, 2)
        finally:
            await other.close()


def _lost(engine: Engine) -> float | None:
    return engine.metrics.registry.get_sample_value("autoremedy_runs_lost_total")


async def test_the_escalation_sender_is_woken_by_an_outcome_only_when_it_queued_an_escalation(tmp_path: Path) -> None:
    playbooks = [
        {"name": "fine", "target": "fine", "steps": [{"action": "test.script", "with": {"key": "fine"}}]},
        {"name": "broken", "target": "broken", "steps": [{"action": "test.script", "with": {"key": "broken"}}]},
    ]
    async with engine_parts(tmp_path, playbooks) as engine:
        engine.script.answer("broken", lambda ctx: ActionResult.give_up("refused"))
        async with _worker(engine, concurrency=1) as worker:
            wakes: list[str] = []
            worker.on_outcome = lambda: wakes.append("woken")

            async def finished(status: str) -> bool:
                return status in await _statuses(engine)

            await engine.planned_runs("fine")
            worker.wake()
            await wait_for(lambda: finished("succeeded"), timeout=10, message="the run succeeded")
            assert wakes == []  # a success with nothing to resolve queued nothing: the sender sleeps on
            await engine.planned_runs("broken")
            worker.wake()
            await wait_for(lambda: finished("failed"), timeout=10, message="the run failed")
            assert wakes == ["woken"]  # run_failed is queued: the sender is told
        assert [e.trigger for e in await engine.store.escalations(limit=5)] == ["run_failed"]
