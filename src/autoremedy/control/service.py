"""The one implementation of steering automation: approve or deny a held run, pause and resume, close the
breaker, the status. The HTTP API, the CLI (through the API), Slack commands, Slack buttons and the web console
all call this; none of them reaches the store for these, so the rules below hold on every path:

- the principal needs the `control` scope;
- `chatops.approvers.<playbook>`, when set, names who alone may approve or deny that playbook's runs, whatever
  the transport (Slack user or channel ids, `token:<name>`, `basic:<user>`);
- whoever requested a run (a manual run from chat records them on its synthetic alert) cannot approve it.

Every decision lands in the audit log with the principal's name as actor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.control.credentials import Principal, Scope
from autoremedy.models import webhook
from autoremedy.models.runs import Run
from autoremedy.store.base import Store

ALL: Final = "all"
"""The pause scope of all automation."""
REQUESTER_LABEL: Final = webhook.REQUESTER_LABEL
SLACK: Final = "slack:"
"""On a manual run's synthetic alert: the principal name of who asked for it (a webhook may not set it)."""


class Forbidden(Exception):
    """The principal may not do this; the message says why (the missing scope, or the approvers rule)."""


class UnknownRun(LookupError):
    """No run has this id."""


class UnknownRule(LookupError):
    """No loaded rule has this name."""


@dataclass(frozen=True)
class BreakerReport:
    open: bool
    opened_at: str | None
    last_attempt_at: str | None


@dataclass(frozen=True)
class PauseReport:
    scope: str
    by: str
    reason: str
    at: str


@dataclass(frozen=True)
class DeadEventReport:
    event_id: int
    fingerprint: str
    alertname: str | None
    status: str
    dead_at: str | None
    attempts: int
    error: str


@dataclass(frozen=True)
class DeadEventsReport:
    """Events whose decision was dead-lettered: how many, and the newest few with their error."""

    count: int
    latest: list[DeadEventReport]


@dataclass(frozen=True)
class StatusReport:
    instance: str
    queue_depth: int
    runs: dict[str, int]
    breaker: BreakerReport
    paused: list[PauseReport]
    config: dict[str, Any] = field(default_factory=dict)
    """The last load of rules and playbooks (engine.config_watch.ReloadStatus): refused changes show here."""
    queue_oldest_age_seconds: float = 0.0
    """How long the oldest event waiting to be decided has waited."""
    dead_events: DeadEventsReport = DeadEventsReport(0, [])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


DEAD_EVENTS_SHOWN = 10


class ControlService:
    def __init__(
        self,
        *,
        store: Store,
        approvers: Mapping[str, Sequence[str]],
        rule_names: Callable[[], set[str]],
        wake: Callable[[], None],
        on_denied: Callable[[Run], None],
        instance: str,
        clock: Callable[[], datetime] = SYSTEM_CLOCK.now,
        config_status: Callable[[], dict[str, Any]] = dict,
        slack_identities: Mapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._slack_identities = dict(slack_identities or {})
        """`token:<name>` / `basic:<name>` -> `slack:<user>`: whose Slack user a credential is (server.auth)."""
        self._approvers = {playbook: frozenset(ids) for playbook, ids in approvers.items()}
        self._rule_names = rule_names
        self._wake = wake
        self._on_denied = on_denied
        self._instance = instance
        self._clock = clock
        self._config_status = config_status

    # -- approvals --------------------------------------------------------------------------------------------

    async def approve(self, principal: Principal, run_id: str, *, reason: str = "") -> Run:
        """Let a held run go ahead (raises Forbidden, UnknownRun, NotAwaitingApproval)."""
        return await self._decide(principal, run_id, approved=True, reason=reason)

    async def deny(self, principal: Principal, run_id: str, *, reason: str = "") -> Run:
        """Refuse a held run (raises Forbidden, UnknownRun, NotAwaitingApproval)."""
        return await self._decide(principal, run_id, approved=False, reason=reason)

    def may_approve(self, principal: Principal, run: Run) -> bool:
        """Whether to offer this principal an Approve button for the run (the requester rule needs the store and
        is checked when the button is pressed)."""
        return principal.has(Scope.CONTROL) and self._approver_refusal(principal, run) is None

    async def _decide(self, principal: Principal, run_id: str, *, approved: bool, reason: str) -> Run:
        _require_control(principal)
        run = await self._store.get_run(run_id)
        if run is None:
            raise UnknownRun(f"no run {run_id!r}")
        refusal = self._approver_refusal(principal, run) or await self._requester_refusal(principal, run)
        if refusal is not None:
            raise Forbidden(refusal)
        decide = self._store.approve if approved else self._store.deny
        decided = await decide(run.id, actor=principal.name, reason=reason, now=self._clock())
        if decided is None:
            raise UnknownRun(f"no run {run_id!r}")
        if approved:
            self._wake()
        else:
            self._on_denied(decided)
        return decided

    def _approver_refusal(self, principal: Principal, run: Run) -> str | None:
        return approver_refusal(principal, run.playbook, self._approvers)

    async def _requester_refusal(self, principal: Principal, run: Run) -> str | None:
        """The person who asked for a manual run in Slack may not decide it, with any credential of theirs: a
        token or console login counts as theirs when server.auth says so (`slack_user`), and as possibly theirs
        when it names no Slack user at all."""
        event = await self._store.get_event(run.event_id)
        requester = event.labels.get(REQUESTER_LABEL) if event is not None else None
        if requester is None:
            return None
        if requester in (principal.name, self._slack_identities.get(principal.name)):
            return f"{requester} requested run {run.id} and cannot also approve or deny it: ask someone else"
        unknown = not principal.name.startswith(SLACK) and principal.name not in self._slack_identities
        if requester.startswith(SLACK) and unknown:
            return (
                f"run {run.id} was requested in Slack by {requester}, and {principal.name} names no Slack user, so "
                "it cannot be told apart from the requester: decide it in Slack, or give the credential its "
                "holder's slack_user in server.auth"
            )
        return None

    # -- pauses and the breaker -------------------------------------------------------------------------------

    async def pause(self, principal: Principal, rule: str | None, *, reason: str = "") -> None:
        """Pause one rule, or all automation (raises Forbidden, UnknownRule)."""
        _require_control(principal)
        if rule is not None and rule not in self._rule_names():
            raise UnknownRule(f"no rule {rule!r}")
        await self._store.set_pause(rule or ALL, actor=principal.name, reason=reason, now=self._clock())

    async def resume(self, principal: Principal, rule: str | None) -> bool:
        """Resume one rule, or all automation; False when it was not paused (raises Forbidden)."""
        _require_control(principal)
        return await self._store.clear_pause(rule or ALL, actor=principal.name, now=self._clock())

    async def close_breaker(self, principal: Principal) -> bool:
        """Close the circuit breaker; whether it was open (raises Forbidden)."""
        _require_control(principal)
        return await self._store.close_breaker(actor=principal.name, now=self._clock())

    async def status(self) -> StatusReport:
        store = self._store
        breaker = await store.breaker()
        oldest = await store.oldest_pending()
        dead_count, dead = await store.dead_events(limit=DEAD_EVENTS_SHOWN)
        return StatusReport(
            instance=self._instance,
            queue_depth=await store.pending_events(),
            runs=await store.active_counts(),
            breaker=BreakerReport(
                open=breaker.open,
                opened_at=_iso(breaker.opened_at),
                last_attempt_at=_iso(breaker.last_attempt_at),
            ),
            paused=[PauseReport(p.scope, p.actor, p.reason, p.at.isoformat()) for p in await store.pauses()],
            config=self._config_status(),
            queue_oldest_age_seconds=round((self._clock() - oldest).total_seconds(), 3) if oldest else 0.0,
            dead_events=DeadEventsReport(
                dead_count,
                [
                    DeadEventReport(d.id, d.fingerprint, d.alertname, d.status, _iso(d.dead_at), d.attempts, d.error)
                    for d in dead
                ],
            ),
        )


def approver_refusal(principal: Principal, playbook: str, approvers: Mapping[str, frozenset[str]]) -> str | None:
    """Why the principal may not decide runs of this playbook (None: they may, or the playbook names nobody)."""
    allowed = approvers.get(playbook)
    if allowed is None or _identities(principal) & allowed:
        return None
    return (
        f"{principal.name} is not an approver of playbook {playbook!r}: runs of it are decided only by those in "
        f"chatops.approvers.{playbook}"
    )


def _require_control(principal: Principal) -> None:
    if not principal.has(Scope.CONTROL):
        raise Forbidden(f"{principal.name} lacks the scope `{Scope.CONTROL}`")


def _identities(principal: Principal) -> frozenset[str]:
    """The names an approvers list may give this principal: a Slack user as `slack:U1` or plain `U1`, and the
    channel the request came from."""
    found = {principal.name}
    if principal.name.startswith("slack:"):
        found.add(principal.name.removeprefix("slack:"))
    if principal.via:
        found.add(principal.via)
    return frozenset(found)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
