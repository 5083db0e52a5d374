"""Runs handed from the decider to its own worker: claimed in the decision's transaction (a new epoch, the first
step's start recorded) for the worker's free slots, on SQLite and PostgreSQL. A daemon that dies right after that
commit leaves a run another instance takes over and executes once; runs beyond the free slots are claimed by the
worker when a slot frees. On a manual clock: time moves only when the test moves it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from autoremedy.actions.base import ActionRegistry, ActionSpec
from autoremedy.config.ruleset import load_ruleset
from autoremedy.decide.planning import Ruleset
from autoremedy.engine.decider import Decider, DecideSettings
from autoremedy.engine.executor import Executor, Prepared
from autoremedy.engine.worker import Worker
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.runs import Run, RunStatus, StepOutcome
from autoremedy.observability import Metrics
from autoremedy.store.base import RunTakenOver
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from autoremedy.store.sqlstore import SqlStore
from tests.support.clock import ManualClock
from tests.support.engine_parts import Script, ScriptInputs, event, rules_and_playbooks
from tests.support.inprocess import fresh_database
from tests.support.postgres import PostgresServer
from tests.support.procs import wait_for

TAKEOVER_AFTER = timedelta(seconds=30)
PLAYBOOK = {
    "name": "act",
    "target": "{{ alert.fingerprint }}",
    "steps": [
        {"action": "test.script", "name": "first", "with": {"key": "first"}},
        {"action": "test.script", "name": "second", "with": {"key": "second"}},
    ],
}


@pytest.fixture(params=["sqlite", "postgres"])
async def instances(
    request: pytest.FixtureRequest, tmp_path: Path, shared_postgres: PostgresServer
) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two daemon instances' stores (two owners) on one database."""

    def instance() -> SqlStore:
        if request.param == "postgres":
            return PostgresStore(dsn, takeover_after=TAKEOVER_AFTER)
        return SQLiteStore(tmp_path / "store.db", takeover_after=TAKEOVER_AFTER)

    dsn = await fresh_database(shared_postgres) if request.param == "postgres" else ""
    backends = (instance(), instance())
    for backend in backends:
        await backend.open()
    try:
        yield backends
    finally:
        for backend in backends:
            await backend.close()


@dataclass
class Parts:
    clock: ManualClock
    script: Script
    ruleset: Ruleset
    registry: ActionRegistry
    metrics: Metrics


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    script = Script()
    spec = ActionSpec("test.script", ScriptInputs, script.run, "Answers what the test scripted.", mutates=False)
    registry = ActionRegistry([spec])
    rules_dir, playbooks_dir = rules_and_playbooks(tmp_path / "config", [PLAYBOOK])
    ruleset = load_ruleset(rules_dir, playbooks_dir, actions=registry.input_models())
    return Parts(ManualClock(), script, ruleset, registry, Metrics())


def decider(store: SqlStore, parts: Parts) -> Decider:
    settings = DecideSettings(dry_run=False, guardrails=GuardrailSettings(), windows=(), batch_size=50)
    return Decider(
        store=store,
        rules=lambda: parts.ruleset,
        metrics=parts.metrics,
        action_mutates=lambda action: False,
        settings=settings,
        clock=parts.clock,
    )


@asynccontextmanager
async def worker(store: SqlStore, parts: Parts, *, concurrency: int) -> AsyncIterator[Worker]:
    async with aiohttp.ClientSession() as http:
        executor = Executor(store=store, registry=parts.registry, metrics=parts.metrics, http=http, clock=parts.clock)
        running = Worker(
            store=store,
            executor=executor,
            rules=lambda: parts.ruleset,
            metrics=parts.metrics,
            concurrency=concurrency,
            poll_interval=2.0,
            clock=parts.clock,
        )
        running.start()
        try:
            yield running
        finally:
            if parts.script.hang is not None:
                parts.script.hang.set()
            await running.stop(grace=5)


class DiesAfterTheCommit:
    """A worker with one free slot whose daemon dies right after the decision transaction committed: the runs
    handed to it are never executed, nor heartbeated."""

    def __init__(self) -> None:
        self.handed: list[Run] = []

    def reserve(self, wanted: int) -> int:
        return min(wanted, 1)

    def hand_over(self, runs: Sequence[tuple[Run, Prepared]], *, reserved: int) -> None:
        self.handed.extend(run for run, _ in runs)


async def statuses(store: SqlStore) -> list[str]:
    return sorted(run.status.value for run in await store.list_runs(status=None, limit=10))


async def test_a_run_handed_over_by_a_daemon_that_died_after_the_decision_commit_is_executed_once_elsewhere(
    instances: tuple[SqlStore, SqlStore], parts: Parts
) -> None:
    a, b = instances
    await a.insert_events([event("act")], now=parts.clock.now())
    dead = DiesAfterTheCommit()
    deciding = decider(a, parts)
    deciding.runner = dead
    assert await deciding.decide_batch() == 1
    (handed,) = dead.handed
    assert (handed.status, handed.owner, handed.epoch) == (RunStatus.RUNNING, a.owner, 1)
    assert handed.steps[0].started_at == parts.clock.now()  # committed with the decision, before any action
    assert parts.script.calls == {}

    await parts.clock.advance(TAKEOVER_AFTER.total_seconds() + 1)  # no heartbeat from a since: b takes it over
    async with worker(b, parts, concurrency=1):

        async def succeeded() -> bool:
            return await statuses(b) == ["succeeded"]

        await wait_for(succeeded, timeout=10, message="b took the run over and finished it")
    assert parts.script.calls == {"first": 1, "second": 1}
    run = await b.get_run(handed.id)
    assert run is not None and (run.owner, run.epoch) == (b.owner, 2)
    assert [step.outcome for step in run.steps] == [StepOutcome.DONE, StepOutcome.DONE]
    audit = [entry.kind for entry in await b.list_audit(run_id=handed.id, limit=10)]
    assert audit.count("run_taken_over") == 1
    with pytest.raises(RunTakenOver):  # a, back from the dead, can write nothing of the run any more
        await a.update_steps(handed.id, [handed.steps[0]], epoch=handed.epoch)


async def test_a_batch_hands_the_worker_as_many_runs_as_it_has_free_slots_and_the_rest_follow(
    instances: tuple[SqlStore, SqlStore], parts: Parts
) -> None:
    store, _ = instances
    release = parts.script.hang = asyncio.Event()
    parts.script.hang_only = {"first"}
    deciding = decider(store, parts)
    async with worker(store, parts, concurrency=1) as running:
        deciding.runner, deciding.on_planned = running, running.wake
        await store.insert_events([event("act"), event("act")], now=parts.clock.now())
        assert await deciding.decide_batch() == 2
        # One slot: the decision's transaction claimed one run and the worker started it without a claim of its own.
        assert await statuses(store) == ["planned", "running"]
        await wait_for(lambda: parts.script.calls == {"first": 1}, timeout=10, message="the handed run started")
        release.set()

        async def all_succeeded() -> bool:
            return await statuses(store) == ["succeeded", "succeeded"]

        await wait_for(all_succeeded, timeout=10, message="the second run followed when the slot freed")
    assert parts.script.calls == {"first": 2, "second": 2}
    for run in await store.list_runs(status=None, limit=10):
        assert (run.owner, run.epoch) == (store.owner, 1)  # each claimed once, by this instance


async def test_the_worker_is_woken_only_for_due_runs_the_decision_could_not_hand_it(
    instances: tuple[SqlStore, SqlStore], parts: Parts
) -> None:
    store, _ = instances
    release = parts.script.hang = asyncio.Event()
    parts.script.hang_only = {"first"}
    deciding = decider(store, parts)
    async with worker(store, parts, concurrency=2) as running:
        wakes: list[str] = []

        def wake() -> None:
            wakes.append("woken")
            running.wake()

        deciding.runner, deciding.on_planned = running, wake
        await store.insert_events([event("act")], now=parts.clock.now())
        await deciding.decide_batch()
        assert wakes == []  # its one run was handed over: nothing left for the worker to look for
        await store.insert_events([event("act"), event("act")], now=parts.clock.now())
        await deciding.decide_batch()
        assert wakes == ["woken"]  # one slot left for two runs: the other waits for the worker's own claim
        release.set()

        async def all_succeeded() -> bool:
            return await statuses(store) == ["succeeded"] * 3

        await wait_for(all_succeeded, timeout=10, message="every run ran")
    assert parts.script.calls == {"first": 3, "second": 3}
