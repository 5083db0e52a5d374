"""The executor on a manual clock over a real SQLite store: retries and their backoff, timeouts, WAIT, resuming,
and fencing. Time moves only when the test moves it; nothing here sleeps for time to pass."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from autoremedy.actions.base import ActionResult
from autoremedy.decide.planning import Plan, PlannedStep
from autoremedy.engine.executor import Prepared, RunVerdict
from autoremedy.models.runs import Run, RunStatus, StepOutcome
from autoremedy.store.base import RunTakenOver
from tests.support.engine_parts import Engine, engine_parts


def _step(key: str, **extra: object) -> dict[str, object]:
    return {"action": "test.script", "name": key, "with": {"key": key}, **extra}


async def _start(engine: Engine, alertname: str) -> asyncio.Task[RunVerdict]:
    run = await engine.claimed_run(alertname)
    return asyncio.create_task(engine.executor.execute(run, engine.ruleset))


def _again(ctx: object) -> ActionResult:
    return ActionResult.retry("not yet")


async def test_a_step_that_asks_to_retry_is_tried_again_after_a_backoff_that_doubles(tmp_path: Path) -> None:
    playbooks = [{"name": "flaky", "target": "t", "steps": [_step("flaky", retries=3)]}]
    async with engine_parts(tmp_path, playbooks, retry_backoff=2.0) as engine:
        engine.script.answer("flaky", _again, _again, lambda ctx: ActionResult.done("fixed"))
        task = await _start(engine, "flaky")
        await engine.clock.sleeping(2.0)  # the first attempt said retry: backing off, on the clock
        assert engine.script.calls == {"flaky": 1}
        await engine.clock.advance(1.9)
        assert engine.script.calls == {"flaky": 1} and engine.clock.pending() == [2.0]
        await engine.clock.advance(0.1)
        await engine.clock.sleeping(4.0)  # the second backoff is twice as long
        assert engine.script.calls == {"flaky": 2}
        await engine.clock.advance(3.9)
        assert engine.script.calls == {"flaky": 2}
        await engine.clock.advance(0.1)
        verdict = await task
        assert engine.script.calls == {"flaky": 3}
        assert (verdict.status, verdict.reason) == (RunStatus.SUCCEEDED, "all steps done")
        # The step's end is written by the worker with the run's outcome (one transaction): it is in the verdict.
        (ended,) = verdict.steps
        assert ended.attempts == 3 and ended.outcome is StepOutcome.DONE


async def test_retries_used_up_fail_the_step_and_abort_the_run_with_the_last_reason(tmp_path: Path) -> None:
    playbooks = [{"name": "broken", "target": "t", "steps": [_step("broken", retries=1), _step("after")]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        engine.script.answer("broken", lambda ctx: ActionResult.retry("still down"))
        task = await _start(engine, "broken")
        await engine.clock.sleeping(1.0)
        await engine.clock.advance(1.0)
        verdict = await task
        assert verdict.status is RunStatus.FAILED
        assert verdict.reason == "step broken failed: still down"
        assert verdict.escalation == "run_failed"
        assert engine.script.calls == {"broken": 2}  # the step after an aborting failure never ran


async def test_an_attempt_past_its_timeout_is_cancelled_and_counts_as_a_retry(tmp_path: Path) -> None:
    playbooks = [{"name": "slow", "target": "t", "steps": [_step("slow", timeout="10s", retries=1)]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        engine.script.hang = asyncio.Event()  # never set: every attempt runs until it is timed out
        task = await _start(engine, "slow")
        await engine.clock.sleeping(10.0)  # the attempt's timeout
        await engine.clock.advance(9.9)
        assert not task.done() and engine.script.calls == {"slow": 1}
        await engine.clock.advance(0.1)  # timed out: the backoff (1s) starts
        await engine.clock.sleeping(1.0)
        await engine.clock.advance(1.0)
        await engine.clock.sleeping(10.0)  # the second attempt's timeout
        assert engine.script.calls == {"slow": 2}
        await engine.clock.advance(10.0)
        verdict = await task
        assert verdict.status is RunStatus.FAILED
        assert verdict.reason == "step slow failed: timed out after 10s"


async def test_a_step_that_says_wait_returns_a_waiting_verdict_with_its_deadline(tmp_path: Path) -> None:
    playbooks = [{"name": "settle", "target": "t", "steps": [_step("settle"), _step("after")]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        until = engine.clock.now() + timedelta(minutes=5)
        engine.script.answer("settle", lambda ctx: ActionResult.wait("waiting for the alert to resolve", until=until))
        verdict = await (await _start(engine, "settle"))
        assert (verdict.status, verdict.wait_until) == (RunStatus.WAITING, until)
        assert engine.script.calls == {"settle": 1}  # the next step waits with the run


async def test_a_resumed_run_skips_the_steps_it_finished_before(tmp_path: Path) -> None:
    playbooks = [{"name": "two", "target": "t", "steps": [_step("first"), _step("second", timeout="10s")]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        run = await engine.claimed_run("two")
        engine.script.hang, engine.script.hang_only = asyncio.Event(), {"second"}
        task = asyncio.create_task(engine.executor.execute(run, engine.ruleset))
        await engine.clock.sleeping(10.0)  # in the second step, under its timeout
        task.cancel()  # the daemon stops mid-step
        await asyncio.gather(task, return_exceptions=True)
        stopped = await engine.store.get_run(run.id)
        assert stopped is not None and [s.outcome for s in stopped.steps] == [StepOutcome.DONE, StepOutcome.PENDING]
        engine.script.hang = None
        # Resumed from its recorded steps, as a claim loads them (the executor does not read them again).
        verdict = await engine.executor.execute(stopped, engine.ruleset)
        assert verdict.status is RunStatus.SUCCEEDED
        assert engine.script.calls == {"first": 1, "second": 2}  # the finished step did not run again


async def test_a_run_taken_over_by_another_instance_is_refused_before_its_next_step(tmp_path: Path) -> None:
    playbooks = [{"name": "fenced", "target": "t", "steps": [_step("first"), _step("second")]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        run = await engine.claimed_run("fenced")
        stale = run.model_copy(update={"epoch": run.epoch - 1})  # what an instance holds after a takeover
        with pytest.raises(RunTakenOver):
            await engine.executor.execute(stale, engine.ruleset)
        assert engine.script.calls == {}  # nothing ran under a stale claim
        assert (await engine.executor.execute(run, engine.ruleset)).status is RunStatus.SUCCEEDED
        assert engine.script.calls == {"first": 1, "second": 1}


async def test_a_claimed_run_whose_rule_was_removed_fails_with_its_first_step_not_run(tmp_path: Path) -> None:
    playbooks = [{"name": "gone", "target": "t", "steps": [_step("first"), _step("second")]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        run = await engine.claimed_run("gone")
        assert run.steps[0].started_at is not None  # the claim recorded the first step's start
        reloaded = dataclasses.replace(engine.ruleset, rules=())  # a reload removed the rule meanwhile
        verdict = await engine.executor.execute(run, reloaded, start_recorded=True)
        assert verdict.status is RunStatus.FAILED and "no longer exists" in verdict.reason
        await engine.store.finish_run(run.id, verdict.status, verdict.reason, [], now=engine.clock.now(),
                                      epoch=run.epoch, steps=verdict.steps)  # fmt: skip
        finished = await engine.store.get_run(run.id)
        assert finished is not None
        # Its start taken back: the step never ran, and says so, as it did before claims recorded starts.
        assert [(s.outcome, s.started_at) for s in finished.steps] == [(StepOutcome.NOT_RUN, None)] * 2
        assert engine.script.calls == {}


async def test_a_claimed_runs_first_step_is_not_written_again_and_keeps_the_claims_start(tmp_path: Path) -> None:
    playbooks = [{"name": "once", "target": "t", "steps": [_step("only")]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        run = await engine.claimed_run("once")
        claimed_at = run.steps[0].started_at
        await engine.clock.advance(5)
        verdict = await engine.executor.execute(run, engine.ruleset, start_recorded=True)
        (ended,) = verdict.steps
        assert (ended.outcome, ended.started_at) == (StepOutcome.DONE, claimed_at)


def _plan_of(run: Run, *, key: str, rule: str | None = None) -> Plan:
    step = PlannedStep(0, "only", "test.script", {"key": key}, timeout_seconds=5.0, retries=0, on_failure="abort")
    return Plan(rule or run.rule, run.playbook, run.target, False, (step,))


async def test_a_plan_the_decider_hands_over_is_executed_as_rendered_and_another_runs_plan_is_not(
    tmp_path: Path,
) -> None:
    playbooks = [
        {"name": "handed", "target": "t1", "steps": [_step("as-recorded")]},
        {"name": "mismatched", "target": "t2", "steps": [_step("as-recorded")]},
    ]
    async with engine_parts(tmp_path, playbooks) as engine:
        run = await engine.claimed_run("handed")
        mine = Prepared(plan=_plan_of(run, key="from-the-decider"), ruleset=engine.ruleset)
        verdict = await engine.executor.execute(run, engine.ruleset, prepared=mine, start_recorded=True)
        assert verdict.status is RunStatus.SUCCEEDED
        assert engine.script.calls == {"from-the-decider": 1}  # not rendered again
        again = await engine.claimed_run("mismatched")
        other = Prepared(plan=_plan_of(again, key="from-the-decider", rule="another-rule"), ruleset=engine.ruleset)
        verdict = await engine.executor.execute(again, engine.ruleset, prepared=other, start_recorded=True)
        assert verdict.status is RunStatus.SUCCEEDED
        assert engine.script.calls == {"from-the-decider": 1, "as-recorded": 1}  # rendered from the playbook


async def test_a_handed_over_plan_is_not_executed_when_a_reload_replaced_the_ruleset_it_was_rendered_by(
    tmp_path: Path,
) -> None:
    # The decider renders the plan, commits, hands it over; a reload between that and the worker's start (an
    # operator removing a rule in a hurry, or changing a step's inputs) must win, as it did when the worker rendered.
    playbooks = [{"name": "reloaded", "target": "t", "steps": [_step("as-decided")]}]
    async with engine_parts(tmp_path, playbooks) as engine:
        run = await engine.claimed_run("reloaded")
        handed = Prepared(plan=_plan_of(run, key="as-decided"), ruleset=engine.ruleset)
        removed = dataclasses.replace(engine.ruleset, rules=())  # the reload removed the rule meanwhile
        verdict = await engine.executor.execute(run, removed, prepared=handed, start_recorded=True)
        assert verdict.status is RunStatus.FAILED and "no longer exists" in verdict.reason
        assert engine.script.calls == {}  # the stale plan did not run
