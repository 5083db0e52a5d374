"""The engine's parts over a real SQLite store in a temp dir, on a manual clock: for direct tests of the executor,
worker, decider and escalation sender without a daemon, HTTP or waiting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from autoremedy.actions.base import ActionContext, ActionInputs, ActionRegistry, ActionResult, ActionSpec
from autoremedy.config.ruleset import load_ruleset
from autoremedy.decide.planning import Ruleset
from autoremedy.engine.decider import Decider, DecideSettings
from autoremedy.engine.executor import Executor
from autoremedy.models.events import NewEvent
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.runs import Run
from autoremedy.observability import Metrics
from autoremedy.store.sqlite import SQLiteStore
from tests.support.clock import ManualClock

ScriptedResult = Callable[[ActionContext], ActionResult]


class ScriptInputs(ActionInputs):
    key: str = "default"


@dataclass
class Script:
    """What the `test.script` action answers, call by call, per key; every call is counted."""

    answers: dict[str, list[ScriptedResult]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    hang: asyncio.Event | None = None
    """When set to an event, calls block until it is set (a step that runs past its timeout)."""
    hang_only: set[str] | None = None
    """The keys `hang` applies to; None: all."""

    def answer(self, key: str, *results: ScriptedResult) -> None:
        self.answers[key] = list(results)

    async def run(self, inputs: ScriptInputs, ctx: ActionContext) -> ActionResult:
        self.calls[inputs.key] = self.calls.get(inputs.key, 0) + 1
        if self.hang is not None and (self.hang_only is None or inputs.key in self.hang_only):
            await self.hang.wait()
        queued = self.answers.get(inputs.key, [])
        if not queued:
            return ActionResult.done("done")
        return (queued.pop(0) if len(queued) > 1 else queued[0])(ctx)


def rules_and_playbooks(folder: Path, playbooks: list[dict[str, Any]]) -> tuple[Path, Path]:
    """One rule per playbook, matching alertname=<playbook name>."""
    rules_dir, playbooks_dir = folder / "rules", folder / "playbooks"
    rules_dir.mkdir(parents=True)
    playbooks_dir.mkdir(parents=True)
    rules = [{"name": p["name"], "matchers": [f"alertname={p['name']}"], "playbook": p["name"]} for p in playbooks]
    (rules_dir / "rules.yaml").write_text(yaml.safe_dump({"rules": rules}))
    for playbook in playbooks:
        (playbooks_dir / f"{playbook['name']}.yaml").write_text(yaml.safe_dump(playbook))
    return rules_dir, playbooks_dir


_fingerprints = itertools.count(1)


def event(alertname: str, *, status: str = "firing", fingerprint: str | None = None) -> NewEvent:
    return NewEvent(
        fingerprint=fingerprint or f"fp{next(_fingerprints)}",
        status=status,
        starts_at="2026-01-05T11:59:00Z",
        ends_at=None,
        labels={"alertname": alertname, "instance": "10.0.0.1:9100"},
        annotations={},
        generator_url="http://prometheus/graph",
        receiver="autoremedy",
        external_url="http://alertmanager",
        group_key="{}:{}",
    )


@dataclass
class Engine:
    """A store, a ruleset, an executor and a decider sharing one manual clock."""

    clock: ManualClock
    store: SQLiteStore
    ruleset: Ruleset
    registry: ActionRegistry
    metrics: Metrics
    executor: Executor
    decider: Decider
    script: Script

    async def planned_runs(self, alertname: str, count: int = 1) -> None:
        """`count` alerts for the playbook named `alertname`, decided into planned runs."""
        await self.store.insert_events([event(alertname) for _ in range(count)], now=self.clock.now())
        await self.decider.decide_batch()

    async def claimed_run(self, alertname: str) -> Run:
        await self.planned_runs(alertname)
        run = await self.store.claim_run(now=self.clock.now())
        assert run is not None
        return run


@asynccontextmanager
async def engine_parts(
    folder: Path,
    playbooks: list[dict[str, Any]],
    *,
    retry_backoff: float = 1.0,
    batch_size: int = 50,
    action_mutates: Callable[[str], bool] = lambda action: False,
) -> AsyncIterator[Engine]:
    clock = ManualClock()
    script = Script()
    registry = ActionRegistry(
        [
            ActionSpec("test.script", ScriptInputs, script.run, "Answers what the test scripted.", mutates=False),
            ActionSpec("test.other", ScriptInputs, script.run, "The same, under another name.", mutates=False),
        ]
    )
    rules_dir, playbooks_dir = rules_and_playbooks(folder, playbooks)
    ruleset = load_ruleset(rules_dir, playbooks_dir, actions=registry.input_models())
    store = SQLiteStore(folder / "store.db")
    await store.open()
    metrics = Metrics()
    decider = Decider(
        store=store,
        rules=lambda: ruleset,
        metrics=metrics,
        action_mutates=action_mutates,
        settings=DecideSettings(
            dry_run=False, guardrails=GuardrailSettings(), windows=(), batch_size=batch_size, max_attempts=3,
            poll_interval=2.0,
        ),
        clock=clock,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            executor = Executor(
                store=store, registry=registry, metrics=metrics, http=http, retry_backoff_seconds=retry_backoff,
                clock=clock,
            )  # fmt: skip
            yield Engine(clock, store, ruleset, registry, metrics, executor, decider, script)
    finally:
        await store.close()
