"""The control service's rules over a real store, without any transport: every steering call needs the control
scope; approvers apply to every principal; the requester of a run cannot decide it; the principal is the actor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from autoremedy.control.credentials import ALL_SCOPES, LEGACY_SCOPES, Principal, Scope
from autoremedy.control.service import REQUESTER_LABEL, ControlService, Forbidden, UnknownRule, UnknownRun
from autoremedy.models.runs import Run, RunStatus
from autoremedy.store.base import NotAwaitingApproval
from autoremedy.store.sqlite import SQLiteStore
from tests.support.records import NOW, decide, event, new_run, stored

OPS = Principal("token:ops-cli", frozenset({Scope.READ, Scope.CONTROL}))
LEAD = Principal("token:oncall-lead", frozenset({Scope.READ, Scope.CONTROL}))
WEBHOOK = Principal("token:alertmanager", frozenset({Scope.INGEST}))
READER = Principal("bearer", LEGACY_SCOPES)


@dataclass
class Calls:
    woken: int = 0
    denied: list[str] = field(default_factory=list)


@dataclass
class Harness:
    store: SQLiteStore
    service: ControlService
    calls: Calls


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    calls = Calls()

    def woken() -> None:
        calls.woken += 1

    def denied(run: Run) -> None:
        calls.denied.append(run.id)

    service = ControlService(
        store=store,
        approvers={"guarded": ["token:oncall-lead", "U0DBA"]},
        rule_names=lambda: {"r"},
        wake=woken,
        on_denied=denied,
        instance="test",
        clock=lambda: NOW,
        slack_identities={"token:ops-cli": "slack:U0OPS", "basic:admin": "slack:U0ADMIN"},
    )
    try:
        yield Harness(store, service, calls)
    finally:
        await store.close()


async def held(h: Harness, run_id: str, *, playbook: str = "p", requester: str | None = None) -> None:
    new = event(f"f-{run_id}")
    if requester is not None:
        new = new.model_copy(update={"labels": {**new.labels, REQUESTER_LABEL: requester}})
    alert = await stored(h.store, new)
    run = replace(new_run(run_id, alert.id, target=f"t/{run_id}", fingerprint=new.fingerprint), playbook=playbook)
    assert await decide(h.store, alert, run, approval="required") == [RunStatus.AWAITING_APPROVAL]


async def test_every_steering_call_needs_the_control_scope(harness: Harness) -> None:
    await held(harness, "a1")
    calls: dict[str, Callable[[Principal], Awaitable[object]]] = {
        "approve": lambda p: harness.service.approve(p, "a1"),
        "deny": lambda p: harness.service.deny(p, "a1"),
        "pause": lambda p: harness.service.pause(p, "r"),
        "resume": lambda p: harness.service.resume(p, "r"),
        "close_breaker": harness.service.close_breaker,
    }
    for name, call in calls.items():
        for principal in (WEBHOOK, READER):
            with pytest.raises(Forbidden, match="lacks the scope `control`"):
                await call(principal)
            assert not harness.service.may_approve(principal, await _run(harness, "a1")), name
    assert await harness.store.pauses() == []
    assert (await _run(harness, "a1")).status is RunStatus.AWAITING_APPROVAL


async def test_approvers_apply_to_api_principals(harness: Harness) -> None:
    await held(harness, "g1", playbook="guarded")
    await held(harness, "g2", playbook="guarded")
    run = await _run(harness, "g1")
    assert not harness.service.may_approve(OPS, run) and harness.service.may_approve(LEAD, run)
    for decide_as in (harness.service.approve, harness.service.deny):
        with pytest.raises(Forbidden, match="token:ops-cli is not an approver of playbook 'guarded'"):
            await decide_as(OPS, "g1")
    slack_channel = Principal("slack:U0OTHER", ALL_SCOPES, via="C0RANDOM")
    with pytest.raises(Forbidden, match="not an approver"):
        await harness.service.approve(slack_channel, "g1")

    approved = await harness.service.approve(LEAD, "g1", reason="checked")
    assert approved.status is RunStatus.PLANNED and harness.calls.woken == 1
    denied = await harness.service.deny(Principal("slack:U0DBA", ALL_SCOPES), "g2", reason="no")
    assert denied.status is RunStatus.SKIPPED and harness.calls.denied == ["g2"]
    actors = {(a.kind, a.run_id): a.actor for a in await harness.store.list_audit(run_id=None, limit=20)}
    assert actors[("approved", "g1")] == "token:oncall-lead" and actors[("denied", "g2")] == "slack:U0DBA"


async def test_the_requester_cannot_decide_their_own_run(harness: Harness) -> None:
    await held(harness, "m1", requester="slack:U0ADMIN")
    admin = Principal("slack:U0ADMIN", ALL_SCOPES, via="C0ONCALL")
    for decide_as in (harness.service.approve, harness.service.deny):
        with pytest.raises(Forbidden, match="slack:U0ADMIN requested run m1"):
            await decide_as(admin, "m1")
    console_login = Principal("basic:admin", ALL_SCOPES)  # the same person, signed in to the console
    with pytest.raises(Forbidden, match="slack:U0ADMIN requested run m1"):
        await harness.service.approve(console_login, "m1")
    with pytest.raises(Forbidden, match="token:oncall-lead names no Slack user"):
        await harness.service.approve(LEAD, "m1")  # may be the requester's: nothing says otherwise
    assert (await harness.service.approve(OPS, "m1")).status is RunStatus.PLANNED  # someone else's token


async def test_unknown_runs_rules_and_decided_runs(harness: Harness) -> None:
    with pytest.raises(UnknownRun):
        await harness.service.approve(OPS, "nope")
    with pytest.raises(UnknownRule, match="no rule 'nope'"):
        await harness.service.pause(OPS, "nope")
    await held(harness, "d1")
    await harness.service.deny(OPS, "d1")
    with pytest.raises(NotAwaitingApproval):
        await harness.service.approve(OPS, "d1")


async def test_pause_resume_breaker_and_status(harness: Harness) -> None:
    await harness.service.pause(OPS, "r", reason="freeze")
    await harness.service.pause(LEAD, None)
    status = await harness.service.status()
    paused = {(p.scope, p.by, p.reason) for p in status.paused}
    assert paused == {("r", "token:ops-cli", "freeze"), ("all", "token:oncall-lead", "")}
    assert status.to_json()["breaker"] == {"open": False, "opened_at": None, "last_attempt_at": None}
    assert await harness.service.resume(OPS, "r") is True
    assert await harness.service.resume(OPS, "r") is False
    assert await harness.service.close_breaker(OPS) is False
    assert status.instance == "test" and isinstance(status.queue_depth, int)


async def _run(h: Harness, run_id: str) -> Run:
    run = await h.store.get_run(run_id)
    assert run is not None
    return run
