"""The memo of `decide` that backtests use gives what `decide` gives, and turns itself off where a template's
text cannot say what it reads of the alert."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from autoremedy.actions.registry import default_registry
from autoremedy.config.ruleset import load_ruleset
from autoremedy.decide.decide_memo import DecideMemo, alert_reads
from autoremedy.decide.matchers import parse_matcher
from autoremedy.decide.planning import CompiledRule, Ruleset, decide
from autoremedy.models.playbooks import Playbook
from autoremedy.models.rules import Rule

ROOT = Path(__file__).resolve().parents[2]


def one_rule(target: str, message: str = "x", params: dict[str, Any] | None = None) -> tuple[CompiledRule, Ruleset]:
    rule = Rule(name="r", matchers=["a=b"], playbook="p", params=params or {})
    playbook = Playbook.model_validate(
        {"name": "p", "target": target, "steps": [{"action": "log", "with": {"message": message}}]}
    )
    compiled = CompiledRule(rule, (parse_matcher("a=b"),))
    return compiled, Ruleset(rules=(compiled,), playbooks={"p": playbook})


@pytest.mark.parametrize(
    ("target", "message", "reads"),
    [
        ("alert/{{ alert.labels.pod }}", "{{ alert.startsAt }}", {("labels", "pod"), ("startsAt", None)}),
        (
            "t",
            "{{ alert.annotations.summary | default(alert.labels.alertname) }}",
            {("annotations", "summary"), ("labels", "alertname")},
        ),
        ("t", "{{ alert.labels.get('pod') }}", {("labels", None)}),
        ("t", "{{ alert.labels | tojson }}", {("labels", None)}),
        ("t", "{{ alert | tojson }}", None),
        ("t", "{{ alert['labels'] }}", None),
        ("t", "{% set a = alert %}{{ a.labels.pod }}", None),
        ("alert/fixed", "no template", set()),
    ],
)
def test_what_a_template_reads_of_the_alert(target: str, message: str, reads: set[Any] | None) -> None:
    compiled, ruleset = one_rule(target, message)
    found = alert_reads(compiled, ruleset)
    assert found == (frozenset(reads) if reads is not None else None)


def test_params_count_too() -> None:
    compiled, ruleset = one_rule("t/{{ params.x }}", params={"x": "{{ alert.labels.deployment }}"})
    assert alert_reads(compiled, ruleset) == frozenset({("labels", "deployment")})


def views() -> list[dict[str, Any]]:
    shapes = [
        {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "cart-7d9f8b6c5d-x2x7q"},
        {"alertname": "KubePodNotReady", "namespace": "shop", "pod": "search-0"},
        {
            "alertname": "HighRequestLatency",
            "severity": "page",
            "namespace": "shop",
            "service": "cart",
            "scalable": "true",
        },
        {"alertname": "AbusiveClientIP", "client_ip": "203.0.113.7"},
        {"alertname": "PostgresPrimaryDown", "database": "orders", "namespace": "db"},
        {"alertname": "DemoAppDown", "severity": "critical"},
        {"alertname": "ClientOnBlocklist", "client_ip": "192.0.2.1", "list": "drop"},
        {"alertname": "KubePodCrashLooping", "namespace": "shop"},  # no pod label: the plan cannot be rendered
        {"alertname": "DemoAppDown", "severity": "critical", "autoremedy_dry_run": "true"},
    ]
    found = []
    for (index, labels), status, summary, starts in itertools.product(
        enumerate(shapes),
        ("firing", "resolved"),
        ("one", "two", None),
        ("2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z"),
    ):
        annotations = {"summary": summary} if summary else {}
        found.append(
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": starts,
                "endsAt": None,
                "generatorURL": "",
                "fingerprint": f"fp{index}",
                "receiver": "r",
                "externalURL": "",
            }
        )
    return found


def test_the_memo_gives_what_decide_gives_for_the_examples() -> None:
    ruleset = load_ruleset(ROOT / "rules", ROOT / "playbooks", actions=default_registry().input_models())
    memo = DecideMemo(ruleset)
    for _ in range(2):  # the second time, from the memo
        for view in views():
            for dry_run in (False, True):
                assert memo(view, dry_run=dry_run) == decide(ruleset, view, dry_run=dry_run), view
