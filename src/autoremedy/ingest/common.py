"""What the HTTP handlers share: the services they reach, error bodies, JSON for runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.config.settings import Settings
from autoremedy.config.settings_server import AuthSettings
from autoremedy.control.credentials import Principal
from autoremedy.control.limiter import FailedSignIns
from autoremedy.control.service import ControlService
from autoremedy.models.clock import Clock
from autoremedy.models.rules import Rule
from autoremedy.models.runs import Run
from autoremedy.observability import Metrics
from autoremedy.store.base import Store
from autoremedy.store.groupcommit import GroupCommitter


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: Store
    committer: GroupCommitter
    metrics: Metrics
    is_ready: Callable[[], bool]
    rule_names: Callable[[], set[str]]
    wake: Callable[[], None]
    backlog: Callable[[], int]
    """Stored alert events waiting to be decided, as this instance last knew it."""
    instance: str
    """This daemon's identity in the store (the owner of the runs it executes)."""
    control: ControlService
    """Approve, deny, pause, resume, breaker, status: the one implementation every transport calls."""
    match_rules: Callable[[Mapping[str, str]], list[str]] = lambda labels: []
    problems: Callable[[], list[str]] = lambda: []
    """Why the daemon is not ready beyond the store and the rules (e.g. a loop that ended), for /readyz."""
    """The names of the rules a firing alert with these labels would go to (for manual runs from chat)."""
    rules: Callable[[], Mapping[str, Rule]] = lambda: {}
    """The loaded rules by name, as they are now (the web console shows their matchers and limits)."""
    verifies: Callable[[str], bool] = lambda action: False
    """Whether an action checks that a remediation worked (ActionSpec.verifies), for the console's run page."""
    clock: Clock = SYSTEM_CLOCK
    """Where the HTTP, chat and console code read the time (the Slack replay window, sessions, audit records)."""
    sign_ins: FailedSignIns = field(default_factory=lambda: FailedSignIns.for_auth(AuthSettings()))
    """Failed sign-ins per client address, for the API's credentials and the console's sign-in."""


SERVICES = web.AppKey("services", Services)
PRINCIPAL = web.RequestKey("principal", Principal)


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def run_json(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json")


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
