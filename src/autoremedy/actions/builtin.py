"""Actions that need no external system: `log` and `wait`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec
from autoremedy.models.durations import Duration


class LogInputs(ActionInputs):
    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"


async def run_log(inputs: LogInputs, ctx: ActionContext) -> ActionResult:
    await getattr(ctx.log, f"a{inputs.level}")(inputs.message, action="log", dry_run=ctx.dry_run)
    return ActionResult.done(inputs.message)


class WaitInputs(ActionInputs):
    duration: Duration = timedelta(seconds=1)


async def run_wait(inputs: WaitInputs, ctx: ActionContext) -> ActionResult:
    if ctx.dry_run:
        return ActionResult.done(f"dry run: would wait {inputs.duration.total_seconds():g}s")
    await asyncio.sleep(inputs.duration.total_seconds())
    return ActionResult.done(f"waited {inputs.duration.total_seconds():g}s")


LOG = ActionSpec("log", LogInputs, run_log, "Write a message to the daemon's log and the step result.", dry_run=True)
WAIT = ActionSpec(
    "wait", WaitInputs, run_wait, "Pause the run, e.g. to let a change settle before a check.", dry_run=True
)


ALERT_RESOLVED = "alert.resolved"


class AlertResolvedInputs(ActionInputs):
    within: Duration = timedelta(minutes=10)


async def _engine_step(inputs: AlertResolvedInputs, ctx: ActionContext) -> ActionResult:
    # The executor carries this step out itself: waiting without a worker slot is the engine's business.
    return ActionResult.give_up("alert.resolved is carried out by the engine, not called as an action")


WAIT_FOR_RESOLUTION = ActionSpec(
    ALERT_RESOLVED,
    AlertResolvedInputs,
    _engine_step,
    "Wait, holding no worker slot, until the alert resolves (the resolved webhook wakes the run) or `within`.",
    dry_run=True,
)
