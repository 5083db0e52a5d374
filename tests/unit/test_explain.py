"""The reading of an alert's record that chat `explain` and the web console share (decide/explain.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoremedy.decide.explain import explain_entry, outcomes_of
from autoremedy.models.runs import Run, RunStatus

NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)
RAN = "rule restart ran playbook restart-deployment"


def run(status: RunStatus, guardrail: str = "allowed", reason: str = "ok") -> Run:
    return Run(
        id="r1",
        status=status,
        reason=reason,
        rule="restart",
        playbook="restart-deployment",
        target="deployment/shop/web",
        fingerprint="f",
        event_id=1,
        alert_status="firing",
        dry_run=False,
        guardrail=guardrail,
        created_at=NOW,
    )


def test_a_verdict_entry_names_the_rule_and_the_guardrail() -> None:
    data = {"rule": "restart", "playbook": "p", "target": "t", "guardrail": "cooldown", "decision": "skip"}
    told = explain_entry(at=NOW, kind="verdict_cooldown", actor="autoremedy", message="until x", run_id="r1", data=data)
    assert told.verdict is not None
    assert (told.verdict.rule, told.verdict.guardrail, told.verdict.decision) == ("restart", "cooldown", "skip")
    other = explain_entry(at=NOW, kind="approved", actor="token:oncall", message="ok", run_id="r1", data={})
    assert other.verdict is None and other.actor == "token:oncall"


@pytest.mark.parametrize(
    ("state", "runs", "expected"),
    [
        ("pending", [], ["waiting to be decided"]),
        ("processing", [], ["waiting to be decided"]),
        ("done", [], ["nothing: no rule matched"]),
        ("no_rule_matched", [], ["nothing: no rule matched"]),
        ("dead", [], ["dead-lettered"]),
        ("done", [run(RunStatus.SUCCEEDED)], [f"succeeded: {RAN}"]),
        ("done", [run(RunStatus.SKIPPED, "cooldown", "cooldown of 10m, until 14:05")], ["skipped: cooldown"]),
        ("done", [run(RunStatus.AWAITING_APPROVAL, "awaiting_approval")], ["awaiting_approval"]),
        (
            "done",
            [run(RunStatus.FAILED, "allowed", "step 1 failed")],
            ["failed: rule restart ran playbook restart-deployment"],
        ),
    ],
)
def test_the_outcome_of_an_alert(state: str, runs: list[Run], expected: list[str]) -> None:
    assert [outcome.summary for outcome in outcomes_of(state, runs)] == expected


def test_a_blocked_run_keeps_its_reason_and_is_not_acted() -> None:
    (outcome,) = outcomes_of("done", [run(RunStatus.SKIPPED, "cooldown", "cooldown of 10m, until 14:05")])
    assert outcome.detail == "cooldown of 10m, until 14:05" and outcome.run_id == "r1" and not outcome.acted
    (ran,) = outcomes_of("done", [run(RunStatus.RUNNING)])
    assert ran.acted
