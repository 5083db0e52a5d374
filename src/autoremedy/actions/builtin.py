"""Actions that need no external system: `log` and `wait`."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec
from autoremedy.models.durations import Duration, format_duration

REPEATS_HARMLESSLY = "it runs again when the run resumes; repeating it changes nothing."


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
    await ctx.clock.sleep(inputs.duration.total_seconds())
    return ActionResult.done(f"waited {inputs.duration.total_seconds():g}s")


LOG = ActionSpec(
    "log",
    LogInputs,
    run_log,
    "Write a message to the daemon's log and the step result.",
    dry_run=True,
    after_crash="the message may be logged twice; nothing else.",
    mutates=False,
)
WAIT = ActionSpec(
    "wait",
    WaitInputs,
    run_wait,
    "Pause the run, e.g. to let a change settle before a check.",
    dry_run=True,
    after_crash="the whole wait starts again when the run resumes.",
    mutates=False,
)


ALERT_RESOLVED = "alert.resolved"


class AlertResolvedInputs(ActionInputs):
    within: Duration = timedelta(minutes=10)


async def run_alert_resolved(inputs: AlertResolvedInputs, ctx: ActionContext) -> ActionResult:
    """Done once the alert resolved; otherwise WAIT: the run sleeps without a slot until the resolved webhook
    wakes it or `within` passes (then the step fails)."""
    resolved_at = await ctx.alert_resolved_at()
    if resolved_at is not None:
        return ActionResult.done(f"the alert resolved at {resolved_at.isoformat()}")
    now = ctx.clock.now()
    if ctx.waited_until is not None and now >= ctx.waited_until:
        return ActionResult.give_up(f"the alert did not resolve within {format_duration(inputs.within)}")
    if ctx.dry_run:
        return ActionResult.done(f"dry run: would wait up to {format_duration(inputs.within)} for the alert to resolve")
    until = ctx.waited_until or now + inputs.within
    return ActionResult.wait(f"waiting for the alert to resolve, until {until.isoformat()}", until=until)


WAIT_FOR_RESOLUTION = ActionSpec(
    ALERT_RESOLVED,
    AlertResolvedInputs,
    run_alert_resolved,
    "Wait, holding no worker slot, until the alert resolves (the resolved webhook wakes the run) or `within`.",
    dry_run=True,
    verifies=True,
    after_crash=REPEATS_HARMLESSLY + " The deadline is kept across the restart.",
    mutates=False,
)
