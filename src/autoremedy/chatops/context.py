"""What chat commands reach, who calls them, and what they answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.config.settings import Settings
from autoremedy.control.service import ControlService
from autoremedy.models.clock import Clock
from autoremedy.models.ids import Fingerprint
from autoremedy.models.runs import Run
from autoremedy.observability import Metrics
from autoremedy.store.base import Store
from autoremedy.store.groupcommit import GroupCommitter


@dataclass(frozen=True, slots=True)
class ChatServices:
    settings: Settings
    store: Store
    """Reads only (runs, explain, audit); every change goes through `control` or, for a manual run, `committer`."""
    control: ControlService
    committer: GroupCommitter
    metrics: Metrics
    match_rules: Callable[[Mapping[str, str]], list[str]]
    """The names of the rules a firing alert with these labels would go to (for manual runs)."""
    clock: Clock = SYSTEM_CLOCK
    """Where commands read the time: the Slack replay window, audit records, manual alerts."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a command, as Slack vouched for it in a signed request or over the app's socket."""

    user: str
    channel: str
    name: str = ""
    """The user's Slack handle, for the log only: users can change it, so it is never an identity."""

    @classmethod
    def of(cls, user: object, channel: object, name: object = "") -> Caller:
        """A caller from a request's fields, whatever their types."""
        return cls(printable(str(user or "")), printable(str(channel or "")), printable(str(name or "")))

    @property
    def actor(self) -> str:
        return f"slack:{self.user}"


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    public: bool = False
    """in_channel (everyone sees it) rather than ephemeral (only the caller)."""
    allowed: bool = True
    run: Run | None = field(default=None, compare=False)
    """The run an approve or deny decided."""
    fingerprint: Fingerprint | None = None
    """The alert a manual run was stored as."""


def printable(text: str) -> str:
    """Text as chat commands take it: control characters (NUL included, which PostgreSQL refuses in text) and lone
    surrogates become spaces, so an odd request is an unknown command rather than a store error."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
