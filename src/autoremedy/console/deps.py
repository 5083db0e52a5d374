"""What the console needs from the daemon: a structural view of the HTTP layer's services."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

from aiohttp import web

from autoremedy.config.settings import Settings
from autoremedy.control.limiter import FailedSignIns
from autoremedy.control.service import ControlService
from autoremedy.models.clock import Clock
from autoremedy.models.rules import Rule
from autoremedy.store.base import Store


class ConsoleServices(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def control(self) -> ControlService: ...

    @property
    def sign_ins(self) -> FailedSignIns:
        """Failed sign-ins per client address (shared with the API's credentials)."""
        ...

    @property
    def rules(self) -> Callable[[], Mapping[str, Rule]]:
        """The loaded rules by name (they change on reload)."""
        ...

    @property
    def clock(self) -> Clock:
        """Where the console reads the time (sessions, limits, live updates)."""
        ...

    @property
    def verifies(self) -> Callable[[str], bool]:
        """Whether an action is a verification (ActionSpec.verifies)."""
        ...


CONSOLE = web.AppKey("console", ConsoleServices)
STOPPING = web.AppKey("console_stopping", asyncio.Event)
"""Set when the server shuts down: live-update streams end instead of holding the shutdown up."""
