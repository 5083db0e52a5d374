"""The words rule-test files may expect are the guardrail reasons the daemon records, so a rule test cannot
expect a verdict the code never gives, and a reason added to the code is one rule tests can name."""

from __future__ import annotations

from typing import get_args

from autoremedy.models.rule_tests import Verdict
from autoremedy.models.runs import GuardrailReason

# Reasons a waiting run ends with, after its verdict: a rule test expects the verdict, not these.
AFTER_THE_VERDICT = {
    GuardrailReason.RULE_REMOVED,
    GuardrailReason.ALERT_RESOLVED,
    GuardrailReason.APPROVAL_EXPIRED,
    GuardrailReason.DENIED,
}


def test_rule_test_verdicts_are_guardrail_reasons_or_a_failed_plan() -> None:
    words = set(get_args(Verdict))
    assert words - {r.value for r in GuardrailReason} == {"plan_failed"}
    assert {r.value for r in GuardrailReason} - words == {r.value for r in AFTER_THE_VERDICT}
