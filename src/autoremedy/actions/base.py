"""What every action is: typed inputs, and an async function that says done, retry or give up.

Adapters (Kubernetes, CrowdSec, PostgreSQL...) plug in by registering an `ActionSpec` in the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import aiohttp
import structlog
from pydantic import BaseModel

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.models.clock import Clock


class Outcome(StrEnum):
    DONE = "done"
    RETRY = "retry"
    GIVE_UP = "give_up"
    WAIT = "wait"
    """Not done yet: the run sleeps, holding no worker slot, and the step is called again when the run wakes
    (its alert resolved, or `wait_until` passed)."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An action's verdict. `message` is for people; `data` is kept in the step result."""

    outcome: Outcome
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    wait_until: datetime | None = None
    """For WAIT: when the run is due again even if nothing wakes it."""

    @classmethod
    def done(cls, message: str = "", **data: Any) -> ActionResult:
        return cls(Outcome.DONE, message, data)

    @classmethod
    def retry(cls, message: str, **data: Any) -> ActionResult:
        return cls(Outcome.RETRY, message, data)

    @classmethod
    def give_up(cls, message: str, **data: Any) -> ActionResult:
        return cls(Outcome.GIVE_UP, message, data)

    @classmethod
    def wait(cls, message: str, *, until: datetime, **data: Any) -> ActionResult:
        return cls(Outcome.WAIT, message, data, wait_until=until)


async def _never_resolved() -> datetime | None:
    return None


@dataclass(frozen=True, slots=True)
class ActionContext:
    run_id: str
    operation_id: str
    """Idempotency key of this step in this run: a step repeated after a crash finds its own mark and stops."""
    target: str
    deadline: float
    """`clock.monotonic()` when this attempt times out; actions that wait or retry inside stop before it."""
    dry_run: bool
    """Rehearse only: validate and report what would happen (e.g. Kubernetes `dryRun=All`), change nothing."""
    http: aiohttp.ClientSession
    log: structlog.typing.FilteringBoundLogger
    waited_until: datetime | None = None
    """When this step said WAIT before and the run was woken: the deadline it asked for then."""
    alert_resolved_at: Callable[[], Awaitable[datetime | None]] = _never_resolved
    """When the run's alert resolved (a resolved webhook was stored), or None while it fires."""
    clock: Clock = SYSTEM_CLOCK
    """Where actions read the time and sleep: `deadline` is on its monotonic reading."""


ActionFunction = Callable[[Any, ActionContext], Awaitable[ActionResult]]


class ActionInputs(BaseModel):
    """Base of every action's inputs: unknown keys are errors."""

    model_config = {"extra": "forbid", "frozen": True}


@dataclass(frozen=True, slots=True)
class Permission:
    """A Kubernetes RBAC rule an action needs: `verbs` on `resource` in `api_group` ("" is the core group).

    Declared next to the code that makes the calls, so the action reference (docs/actions.md) and the RBAC in
    deploy/kubernetes are checked against one list rather than kept in step by hand.
    """

    api_group: str
    resource: str
    verbs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    inputs: type[ActionInputs]
    run: ActionFunction
    description: str
    dry_run: bool = False
    """True when the action honours ActionContext.dry_run; other actions are not called at all in a dry run."""
    time_input: str | None = None
    """An input (a duration) that bounds how long the action itself takes; the step's timeout stretches to it."""
    verifies: bool = False
    """The action checks that a fix worked: its failure escalates as `verification_failed`, not `run_failed`."""
    after_crash: str = ""
    """What a crash between the call and the record of its outcome can cause (the step runs again on resume),
    for the action reference."""
    permissions: tuple[Permission, ...] = ()
    """The Kubernetes RBAC the action needs from autoremedy's service account; empty for actions that do not
    call the Kubernetes API."""
    mutates: bool = True
    """False for actions that change nothing (log, wait, checks): a run of only such steps neither counts towards
    the global circuit breaker nor is blocked by it."""


class ActionRegistry(Mapping[str, ActionSpec]):
    def __init__(self, specs: list[ActionSpec] | None = None) -> None:
        self._specs: dict[str, ActionSpec] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        for spec in specs or []:
            self.register(spec)

    def add_closer(self, close: Callable[[], Awaitable[None]]) -> None:
        """Something to close when the daemon stops (an API client)."""
        self._closers.append(close)

    async def close(self) -> None:
        for close in self._closers:
            await close()

    def register(self, spec: ActionSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"action {spec.name!r} registered twice")
        self._specs[spec.name] = spec

    def input_models(self) -> dict[str, type[BaseModel]]:
        return {name: spec.inputs for name, spec in self._specs.items()}

    def __getitem__(self, name: str) -> ActionSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
