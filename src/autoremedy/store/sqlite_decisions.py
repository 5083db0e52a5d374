"""The decision transaction on SQLite: guardrail facts, verdicts, runs, cancellations, escalations, breaker.

Everything here runs inside one write transaction on the writer thread, so the facts a verdict is made on cannot
change before the verdict is recorded.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from autoremedy.decide.guardrails import BreakerState, Guard, GuardFacts, Verdict, status_for
from autoremedy.models.events import AlertEvent
from autoremedy.models.runs import RunStatus
from autoremedy.store.base import AuditEntry, DecidedRun, Decision, NewRun
from autoremedy.store.queries import load_queries

Q = load_queries("sqlite")
CANCELLED_REASON = "the alert resolved before the run started"


def decide_in_transaction(
    db: sqlite3.Connection,
    event: AlertEvent,
    runs: Sequence[NewRun],
    audit: Sequence[AuditEntry],
    *,
    guard: Guard,
    now: datetime,
) -> Decision:
    cancelled, woken = on_resolved(db, event, now) if event.status == "resolved" else ([], [])
    breaker = read_breaker(db)
    decided = []
    for run in runs:
        outcome, breaker = _decide_one(db, event, run, guard=guard, now=now, breaker=breaker)
        decided.append(outcome)
    write_breaker(db, breaker)
    insert_audit(db, audit, now)
    db.execute(Q["finish_event"], {"id": event.id, "now": now.isoformat()})
    return Decision(decided, cancelled, woken)


def _decide_one(
    db: sqlite3.Connection, event: AlertEvent, run: NewRun, *, guard: Guard, now: datetime, breaker: BreakerState
) -> tuple[DecidedRun, BreakerState]:
    if run.status is RunStatus.FAILED:
        insert_run(db, run, now, status=RunStatus.FAILED, verdict=None, expires_at=None)
        escalate(db, Notice(run.id, event.fingerprint, run.rule, "plan_failed", run.reason), now)
        return DecidedRun(run.id, run.rule, RunStatus.FAILED, None), breaker
    verdict, breaker = guard.verdict(run.rule, gather_facts(db, run, guard, breaker))
    status = status_for(verdict.decision)
    expires = guard.approval_expiry() if status is RunStatus.AWAITING_APPROVAL else None
    insert_run(db, run, now, status=status, verdict=verdict, expires_at=expires)
    insert_audit(db, [_verdict_audit(event, run, verdict)], now)
    if verdict.escalate:
        escalate(db, Notice(run.id, event.fingerprint, run.rule, verdict.reason, verdict.detail), now)
    if status is RunStatus.AWAITING_APPROVAL:  # the hook approval requests (Slack buttons later) go out through
        escalate(db, Notice(run.id, event.fingerprint, run.rule, "approval_requested", verdict.detail), now)
    return DecidedRun(run.id, run.rule, status, verdict), breaker


def on_resolved(db: sqlite3.Connection, event: AlertEvent, now: datetime) -> tuple[list[str], list[str]]:
    """The alert is over: runs that have not started are cancelled, runs waiting for this are woken, and what was
    escalated about it is resolved."""
    cancelled = cancel_waiting(db, event.fingerprint, now)
    woken = [row["id"] for row in db.execute(Q["wake_waiting_runs"], {"fingerprint": event.fingerprint})]
    resolve_escalations(
        db, event.fingerprint, rule=None, trigger="alert_resolved", detail="the alert resolved", now=now
    )
    return cancelled, woken


def resolve_escalations(
    db: sqlite3.Connection, fingerprint: str, *, rule: str | None, trigger: str, detail: str, now: datetime
) -> None:
    for row in db.execute(Q["open_escalated_rules"], {"fingerprint": fingerprint, "rule": rule}).fetchall():
        escalate(db, Notice(row["run_id"], fingerprint, row["rule"], trigger, detail, kind="resolve"), now)


class Notice(NamedTuple):
    run_id: str | None
    fingerprint: str
    rule: str
    trigger: str
    detail: str
    kind: str = "trigger"


def escalate(db: sqlite3.Connection, notice: Notice, now: datetime) -> None:
    """Queue an escalation in the outbox, in the caller's transaction; the notifier fans it out to channels."""
    db.execute(Q["insert_escalation"], {**notice._asdict(), "created_at": now.isoformat()})


def gather_facts(db: sqlite3.Connection, run: NewRun, guard: Guard, breaker: BreakerState) -> GuardFacts:
    paused = db.execute(Q["paused_scope"], {"rule": run.rule}).fetchone()
    active = db.execute(Q["active_run_on_target"], {"target": run.target}).fetchone()
    since = guard.history_since(run.rule).isoformat()
    times = db.execute(Q["counted_run_times"], {"rule": run.rule, "target": run.target, "since": since}).fetchall()
    in_window = db.execute(Q["count_counted_runs"], {"since": guard.breaker_since(breaker).isoformat()}).fetchone()
    return GuardFacts(
        paused=paused["scope"] if paused else None,
        active_run_on_target=active["id"] if active else None,
        run_times=[datetime.fromisoformat(row["created_at"]) for row in times],
        global_runs_in_window=int(in_window[0]),
        breaker=breaker,
    )


def cancel_waiting(db: sqlite3.Connection, fingerprint: str, now: datetime) -> list[str]:
    cancelled = []
    for row in db.execute(Q["waiting_runs_of_fingerprint"], {"fingerprint": fingerprint}).fetchall():
        if skip_waiting(db, row["id"], "alert_resolved", CANCELLED_REASON, now, kind="run_cancelled"):
            cancelled.append(row["id"])
    return cancelled


def skip_waiting(
    db: sqlite3.Connection,
    run_id: str,
    guardrail: str,
    reason: str,
    now: datetime,
    *,
    kind: str,
    actor: str = "autoremedy",
) -> sqlite3.Row | None:
    params = {"id": run_id, "guardrail": guardrail, "reason": reason, "now": now.isoformat()}
    row: sqlite3.Row | None = db.execute(Q["skip_waiting_run"], params).fetchone()
    if row is not None:
        db.execute(Q["close_unfinished_steps"], {"run_id": run_id})
        insert_audit(db, [AuditEntry(kind, reason, run_id, row["fingerprint"], actor=actor)], now)
    return row


def read_breaker(db: sqlite3.Connection) -> BreakerState:
    row = db.execute(Q["read_breaker"]).fetchone()
    return BreakerState(
        open=bool(row["open"]),
        opened_at=_time(row["opened_at"]),
        last_attempt_at=_time(row["last_attempt_at"]),
        closed_at=_time(row["closed_at"]),
    )


def write_breaker(db: sqlite3.Connection, state: BreakerState) -> None:
    db.execute(
        Q["write_breaker"],
        {
            "open": int(state.open),
            "opened_at": state.opened_at.isoformat() if state.opened_at else None,
            "last_attempt_at": state.last_attempt_at.isoformat() if state.last_attempt_at else None,
            "closed_at": state.closed_at.isoformat() if state.closed_at else None,
        },
    )


def insert_run(
    db: sqlite3.Connection,
    run: NewRun,
    now: datetime,
    *,
    status: RunStatus,
    verdict: Verdict | None,
    expires_at: datetime | None,
) -> None:
    final = status in (RunStatus.SKIPPED, RunStatus.FAILED)
    db.execute(
        Q["insert_guarded_run"],
        {
            "id": run.id,
            "event_id": run.event_id,
            "status": status.value,
            "reason": verdict.detail if verdict is not None and status is not RunStatus.PLANNED else run.reason,
            "rule": run.rule,
            "playbook": run.playbook,
            "target": run.target,
            "fingerprint": run.fingerprint,
            "alert_status": run.alert_status,
            "dry_run": int(run.dry_run),
            "created_at": now.isoformat(),
            "finished_at": now.isoformat() if final else None,
            "guardrail": verdict.reason if verdict is not None else "not_asked",
            "counted": int(not final),
            "not_before": verdict.not_before.isoformat() if verdict is not None and verdict.not_before else None,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    outcome = "not_run" if final else "pending"
    for step in run.steps:
        db.execute(
            Q["insert_step"],
            {
                "run_id": run.id,
                "idx": step.index,
                "name": step.name,
                "action": step.action,
                "inputs": json.dumps(step.inputs),
                "outcome": outcome,
            },
        )


def insert_audit(db: sqlite3.Connection, entries: Sequence[AuditEntry], now: datetime) -> None:
    for entry in entries:
        db.execute(
            Q["insert_audit"],
            {
                "at": now.isoformat(),
                "kind": entry.kind,
                "run_id": entry.run_id,
                "fingerprint": entry.fingerprint,
                "actor": entry.actor,
                "message": entry.message,
                "data": json.dumps(entry.data),
            },
        )


def _verdict_audit(event: AlertEvent, run: NewRun, verdict: Verdict) -> AuditEntry:
    data = {
        "event_id": event.id,
        "rule": run.rule,
        "playbook": run.playbook,
        "target": run.target,
        "decision": verdict.decision.value,
        "guardrail": verdict.reason,
    }
    return AuditEntry(f"verdict_{verdict.reason}", verdict.detail, run.id, event.fingerprint, data=data)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
