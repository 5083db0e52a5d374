"""The store's contract. Every backend implements `Store`; one contract test suite runs against each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from autoremedy.decide.guardrails import BreakerState, Guard, Verdict
from autoremedy.models.events import AlertEvent, NewEvent
from autoremedy.models.ids import EventId, Fingerprint, RuleName, RunId
from autoremedy.models.notifications import NotificationKind, Trigger
from autoremedy.models.runs import Run, RunStatus, StepRecord


class StoreUnavailable(Exception):
    """The store could not read or commit; callers answer 503 or retry later, never drop the work."""


class StoreDataError(Exception):
    """The store refused the data itself (a NUL byte, a value too long for an index, a constraint): retrying the
    same write can never succeed, so the caller fails or dead-letters that item instead of retrying it."""


class RefusedEvents(StoreDataError):
    """Some alerts of one webhook were refused by the store (each tried alone); the others were stored."""

    def __init__(self, refused: dict[int, str], stored: int) -> None:
        super().__init__("; ".join(f"alert {index}: {error}" for index, error in refused.items()))
        self.refused = refused
        """The refused alerts' positions in the webhook, with the store's error."""
        self.stored = stored


class RunTakenOver(Exception):
    """A fenced write matched nothing: another instance claimed the run since (a heartbeat gap longer than
    `takeover_after`), so this instance must stop executing it at once."""

    def __init__(self, run_id: str, epoch: int) -> None:
        super().__init__(f"run {run_id} was taken over by another instance (our claim: epoch {epoch})")
        self.run_id = run_id
        self.epoch = epoch


@dataclass(frozen=True, slots=True)
class InsertOutcome:
    event_id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class NewStep:
    index: int
    name: str | None
    action: str
    inputs: dict[str, Any]
    """Rendered inputs with secrets already redacted."""


@dataclass(frozen=True, slots=True)
class NewRun:
    id: RunId
    event_id: EventId
    status: RunStatus
    reason: str
    rule: RuleName
    playbook: str
    target: str
    fingerprint: Fingerprint
    alert_status: str
    dry_run: bool
    steps: Sequence[NewStep] = ()
    mutates: bool = True
    """False when no step of its playbook changes anything (log, wait, checks): the global circuit breaker
    neither counts nor blocks it."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    kind: str
    message: str
    run_id: RunId | None = None
    fingerprint: Fingerprint | None = None
    actor: str = "autoremedy"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    kind: str
    run_id: str | None
    fingerprint: str | None
    actor: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DecidedRun:
    run_id: str
    rule: str
    status: RunStatus
    verdict: Verdict | None
    """None when the run failed before any guardrail was asked (the plan could not be rendered)."""


@dataclass(frozen=True, slots=True)
class Decision:
    runs: list[DecidedRun]
    cancelled: list[str]
    """Runs of the same alert that had not started, cancelled because it resolved."""
    woken: list[str]
    """Runs waiting for this alert to resolve, now due again."""


class Recorded(NamedTuple):
    """A batch of decisions recorded, and the runs this instance claimed in the same transaction."""

    decisions: list[Decision]
    claimed: list[Run]


@dataclass(frozen=True, slots=True)
class EventDecision:
    """What the pure core decided for one claimed event, to be recorded with the rest of its batch: the runs it
    leads to (none: no rule matched), audit entries of its own, and the guard that judges its runs."""

    event: AlertEvent
    runs: Sequence[NewRun]
    audit: Sequence[AuditEntry]
    guard: Guard


@dataclass(frozen=True, slots=True)
class DeadEvent:
    """An event whose decision was dead-lettered, with the last error."""

    id: int
    fingerprint: str
    status: str
    alertname: str | None
    received_at: datetime
    dead_at: datetime | None
    attempts: int
    error: str


@dataclass(frozen=True, slots=True)
class Pause:
    scope: str
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Escalation:
    id: int
    run_id: str | None
    fingerprint: str
    rule: str
    trigger: Trigger
    detail: str
    created_at: datetime
    kind: NotificationKind = NotificationKind.TRIGGER


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One escalation to send on one channel, with what the message is made from."""

    id: int
    channel: str
    attempts: int
    escalation: Escalation
    run: Run | None
    event: AlertEvent | None
    thread_reference: str | None
    unrecorded: bool = False
    """Its previous attempt was never recorded (the sender died mid-send): it may have been delivered already."""

    @property
    def client_id(self) -> str:
        """The same for every attempt: what a channel that keeps it can find a delivery by."""
        return f"autoremedy-delivery-{self.id}"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    escalation_id: int
    channel: str
    state: str
    attempts: int
    last_error: str | None
    reference: str | None
    trigger: str
    kind: str
    fingerprint: str
    rule: str


class NotAwaitingApproval(Exception):
    """The run exists but is not waiting for an approval (already decided, expired or never needed one)."""


@dataclass(frozen=True, slots=True)
class Recovery:
    requeued_events: int
    interrupted_runs: list[str]


# -- the web console: sign-in sessions and the pages' reads ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in console user. Stored by the SHA-256 of the cookie's value, never the value itself."""

    key_hash: str
    principal: str
    """The credential's name, recorded as the actor of what the session does."""
    scopes: frozenset[str]
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class EventActivity:
    """A stored alert event and the runs its decision created (none: no rule matched, or not decided yet)."""

    event: AlertEvent
    state: str
    """pending | processing | done (or a later state a newer schema adds)."""
    runs: list[Run]


@dataclass(frozen=True, slots=True)
class EscalationSent:
    """An escalation of a run and, once fanned out, one channel's delivery of it (channel None before that)."""

    trigger: str
    kind: str
    detail: str
    created_at: datetime
    channel: str | None
    state: str | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None


class ConsoleStore(Protocol):
    async def create_console_session(self, session: ConsoleSession, *, now: datetime) -> None:
        """Store a new session; expired ones are pruned in the same transaction."""

    async def console_session(self, key_hash: str, *, now: datetime) -> ConsoleSession | None:
        """The session with this key hash, None when unknown or expired."""

    async def end_console_session(self, key_hash: str) -> None: ...

    async def search_runs(
        self, *, status: RunStatus | None, rule: str | None, target: str | None, limit: int
    ) -> list[Run]:
        """Newest first, each filter applied when given."""

    async def runs_created_since(self, since: datetime) -> dict[str, int]:
        """How many runs were created since `since`, per status."""

    async def recent_activity(self, *, limit: int) -> list[EventActivity]:
        """The newest alert events, newest first, each with its runs (without steps)."""

    async def counted_runs_since(self, since: datetime, *, limit: int) -> list[Run]:
        """Runs that count towards cooldowns and budgets, created since `since`, newest first (without steps)."""

    async def escalations_of_run(self, run_id: str) -> list[EscalationSent]:
        """What people were told about a run: each escalation with its deliveries, oldest first."""


class Store(ConsoleStore, Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def insert_events(self, events: Sequence[NewEvent], *, now: datetime) -> list[InsertOutcome]:
        """Store events in one transaction; a known (fingerprint, status, startsAt) is counted, not stored."""

    async def claim_event(self, *, now: datetime) -> AlertEvent | None: ...
    async def claim_events(self, *, limit: int, now: datetime) -> list[AlertEvent]:
        """Up to `limit` pending events, oldest first, claimed by this instance in one transaction (events other
        replicas hold are skipped)."""

    async def record_decisions(self, batch: Sequence[EventDecision], *, now: datetime) -> list[Decision]:
        """Every decision of a batch in one transaction, in order, with the same outcome as recording them one at a
        time: guardrail facts read once per batch and target and kept up to date in memory, runs, steps, audit and
        escalations inserted in bulk, each event marked decided (`done` or `no_rule_matched`)."""

    async def record_and_claim(self, batch: Sequence[EventDecision], *, now: datetime, limit: int) -> Recorded:
        """record_decisions, and in the same transaction, when the batch made runs due (planned, or woken by a
        resolution), up to `limit` due runs claimed for this instance as claim_runs claims them (the oldest first,
        a new epoch each, the first step's start recorded): the decider hands them to its own worker, which has
        that many free slots, without another transaction."""

    async def record_decision_failure(
        self, event: AlertEvent, error: str, *, permanent: bool, max_attempts: int, rule: RuleName, now: datetime
    ) -> bool:
        """Count a failed decision of a claimed event: back to the queue, or (permanent, or failed `max_attempts`
        times) dead-lettered with an audit entry and an escalation, in one transaction. True when dead-lettered."""

    async def oldest_pending(self) -> datetime | None:
        """When the oldest event still waiting to be decided was received."""

    async def dead_events(self, *, limit: int) -> tuple[int, list[DeadEvent]]:
        """How many events are dead-lettered, and the newest `limit` of them."""

    async def get_event(self, event_id: int) -> AlertEvent | None: ...
    async def pending_events(self) -> int: ...

    async def record_decision(
        self, event: AlertEvent, runs: Sequence[NewRun], audit: Sequence[AuditEntry], *, guard: Guard, now: datetime
    ) -> Decision:
        """Atomically: guardrail facts read, verdicts made and recorded on the runs, waiting runs of a resolved
        alert cancelled, escalations queued, and the event marked done."""

    async def claim_run(self, *, now: datetime) -> Run | None:
        """A planned run, or a delayed or deferred one that is due, becomes running."""

    async def claim_runs(self, *, limit: int, now: datetime) -> list[Run]:
        """Up to `limit` due runs claimed in one transaction, each as claim_run claims one: a new epoch, its steps
        as recorded, and the start of the step to run first (the first not finished) recorded, fenced by the
        claim, so the executor calls that step's action without another write."""

    async def approve(self, run_id: RunId, *, actor: str, reason: str, now: datetime) -> Run | None: ...
    async def deny(self, run_id: RunId, *, actor: str, reason: str, now: datetime) -> Run | None: ...
    async def expire_approvals(self, *, now: datetime) -> list[str]: ...
    async def set_pause(self, scope: str, *, actor: str, reason: str, now: datetime) -> None: ...
    async def clear_pause(self, scope: str, *, actor: str, now: datetime) -> bool: ...
    async def pauses(self) -> list[Pause]: ...
    async def breaker(self) -> BreakerState: ...
    async def close_breaker(self, *, actor: str, now: datetime) -> bool: ...
    async def escalations(self, *, limit: int) -> list[Escalation]: ...
    async def active_counts(self) -> dict[str, int]: ...

    async def fan_out(
        self, choose: Callable[[Escalation, AlertEvent | None], list[str]], *, now: datetime, limit: int
    ) -> list[tuple[int, list[str]]]:
        """Deliveries for new escalations: a trigger where `choose` says, a resolve where its triggers went."""

    async def outbox_has_work(self, *, now: datetime) -> bool:
        """Whether an escalation waits to be fanned out or a delivery is due (read only)."""

    async def claim_deliveries(self, *, now: datetime, limit: int, lease: timedelta) -> list[ClaimedDelivery]: ...
    async def delivery_sent(self, delivery_id: int, *, reference: str | None, now: datetime) -> None: ...
    async def delivery_retry(self, delivery_id: int, *, error: str, next_attempt_at: datetime) -> None: ...
    async def delivery_failed(self, delivery_id: int, *, error: str) -> None: ...
    async def deliveries(self, *, limit: int) -> list[DeliveryRecord]: ...
    async def heartbeat(self, *, now: datetime) -> dict[str, int]:
        """Keep this instance's running runs owned: others take over runs whose heartbeat went stale. Returns the
        runs still owned, with the epoch of their claim: a run this instance executes that is missing was taken
        over."""

    async def prune(self, *, before: datetime) -> dict[str, int]:
        """Retention: delete what is older than `before` and finished."""

    async def update_step(self, run_id: RunId, step: StepRecord, *, epoch: int) -> None:
        """Fenced: raises RunTakenOver unless this instance owns the run in this epoch."""

    async def update_steps(self, run_id: RunId, steps: Sequence[StepRecord], *, epoch: int) -> None:
        """Several step records in one transaction, in order, fenced like update_step (all or none)."""

    async def finish_run(
        self,
        run_id: RunId,
        status: RunStatus,
        reason: str,
        audit: Sequence[AuditEntry],
        *,
        now: datetime,
        epoch: int,
        escalation: Trigger | None = None,
        steps: Sequence[StepRecord] = (),
    ) -> bool:
        """The run's outcome, with an escalation (a trigger name) queued in the same transaction when asked; a
        success resolves what earlier failures of the rule on this alert escalated. Fenced like update_step.
        `steps`: step records written first in the same transaction (the last step's end). True when an
        escalation (or a resolve) was queued: only then has the escalation sender work."""

    async def suspend_run(self, run_id: RunId, *, reason: str, wait_until: datetime, now: datetime, epoch: int) -> None:
        """Fenced like update_step."""

    async def resolution_of(self, event_id: int) -> datetime | None: ...
    async def recover(self, *, reason: str, now: datetime) -> Recovery:
        """Events a dead instance was deciding go back to the queue; its runs are resumed by the next claim, or
        interrupted with the reason when they were taken over too often."""

    async def get_run(self, run_id: str) -> Run | None: ...
    async def list_runs(self, *, status: RunStatus | None, limit: int) -> list[Run]: ...
    async def list_audit(self, *, run_id: str | None, limit: int) -> list[AuditRecord]: ...
    async def fingerprint_audit(self, fingerprint: str, *, limit: int) -> list[AuditRecord]:
        """The newest audit entries about an alert: its decisions and verdicts, and its runs' entries."""

    async def record_audit(self, entries: Sequence[AuditEntry], *, now: datetime) -> None:
        """Audit entries on their own (e.g. a chat command, allowed or refused)."""

    async def remember_request(self, signature: str, *, now: datetime, keep: timedelta) -> bool:
        """True the first time a (Slack) request signature is seen, False for a replay; signatures older than
        `keep` are forgotten in the same transaction."""
