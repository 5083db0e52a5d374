"""Table-driven tests for rule matching and plan rendering (decide / plan_for) on hand-built rulesets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from autoremedy.decide.matchers import parse_matcher
from autoremedy.decide.planning import CompiledRule, Plan, Ruleset, decide, matching_rules, plan_for
from autoremedy.models.events import NewEvent
from autoremedy.models.playbooks import Playbook
from autoremedy.models.rules import Rule


def _playbook(name: str = "pb", *, target: str = "alert/{{ alert.labels.alertname }}", **extra: Any) -> Playbook:
    steps = extra.pop("steps", [{"name": "log", "action": "log", "with": {"message": "{{ alert.status }}"}}])
    return Playbook.model_validate({"name": name, "target": target, "steps": steps, **extra})


def _rule(name: str, *matchers: str, **fields: Any) -> CompiledRule:
    rule = Rule.model_validate({"name": name, "matchers": list(matchers), "playbook": "pb", **fields})
    return CompiledRule(rule, tuple(parse_matcher(text) for text in rule.matchers), source=f"test:{name}")


def _ruleset(*rules: CompiledRule, playbooks: tuple[Playbook, ...] | None = None) -> Ruleset:
    books = playbooks if playbooks is not None else (_playbook(),)
    return Ruleset(rules=rules, playbooks={book.name: book for book in books})


def _alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    event = NewEvent(
        fingerprint="fp1",
        status=status,
        starts_at="2024-05-01T10:00:00.000000Z",
        ends_at=None,
        labels={"alertname": "DiskFull", **labels},
        annotations={"summary": "disk full"},
        generator_url="http://prom/graph",
        receiver="autoremedy",
        external_url="http://am",
        group_key="{}:{}",
    )
    return event.template_view()


def _names(plans: list[Plan]) -> list[str]:
    return [plan.rule for plan in plans]


# --- which rules match -----------------------------------------------------------------------------------------

ORDER_RULES = _ruleset(
    _rule("disk-critical", 'alertname="DiskFull"', 'severity="critical"'),
    _rule("disk-any", 'alertname="DiskFull"'),
    _rule("catch-all"),
)

# (labels, rules that run)
FIRST_MATCH_CASES = [
    pytest.param({"severity": "critical"}, ["disk-critical"], id="first-rule-wins"),
    pytest.param({"severity": "warning"}, ["disk-any"], id="second-rule-when-first-misses"),
    pytest.param({"alertname": "CPUHigh"}, ["catch-all"], id="last-rule-as-fallback"),
]


@pytest.mark.parametrize(("labels", "expected"), FIRST_MATCH_CASES)
def test_first_match_wins(labels: dict[str, str], expected: list[str]) -> None:
    assert _names(decide(ORDER_RULES, _alert(**labels), dry_run=False)) == expected


def test_no_rule_matches() -> None:
    ruleset = _ruleset(_rule("only-cpu", 'alertname="CPUHigh"'))
    assert decide(ruleset, _alert(), dry_run=False) == []


CONTINUE_RULES = _ruleset(
    _rule("audit", 'alertname=~".+"', **{"continue": True}),
    _rule("disk-critical", 'alertname="DiskFull"', 'severity="critical"', **{"continue": True}),
    _rule("disk-any", 'alertname="DiskFull"'),
    _rule("never-reached"),
)

CONTINUE_CASES = [
    pytest.param({"severity": "critical"}, ["audit", "disk-critical", "disk-any"], id="continue-chain"),
    pytest.param({"severity": "info"}, ["audit", "disk-any"], id="non-matching-continue-rule-skipped"),
    pytest.param({"alertname": "CPUHigh"}, ["audit", "never-reached"], id="continue-then-fallback"),
]


@pytest.mark.parametrize(("labels", "expected"), CONTINUE_CASES)
def test_continue_lets_later_rules_match(labels: dict[str, str], expected: list[str]) -> None:
    assert _names(decide(CONTINUE_RULES, _alert(**labels), dry_run=False)) == expected


def test_continue_is_read_from_its_yaml_name() -> None:
    assert Rule.model_validate({"name": "r", "playbook": "pb", "continue": True}).continue_ is True
    assert Rule.model_validate({"name": "r", "playbook": "pb"}).continue_ is False


# (`on` as written, or None for the default; alert status; whether the rule matches)
ON_CASES = [
    pytest.param(None, "firing", True, id="default-firing-hits"),
    pytest.param(None, "resolved", False, id="default-ignores-resolved"),
    pytest.param("firing", "firing", True, id="firing-hits"),
    pytest.param("firing", "resolved", False, id="firing-ignores-resolved"),
    pytest.param("resolved", "resolved", True, id="resolved-hits"),
    pytest.param("resolved", "firing", False, id="resolved-ignores-firing"),
    pytest.param("both", "firing", True, id="both-firing"),
    pytest.param("both", "resolved", True, id="both-resolved"),
    pytest.param(["resolved"], "resolved", True, id="list-resolved"),
    pytest.param(["resolved"], "firing", False, id="list-resolved-ignores-firing"),
    pytest.param(["firing", "resolved"], "firing", True, id="list-both-firing"),
    pytest.param(["firing", "resolved"], "resolved", True, id="list-both-resolved"),
]


@pytest.mark.parametrize(("on", "status", "expected"), ON_CASES)
def test_on(on: object, status: str, expected: bool) -> None:
    extra = {} if on is None else {"on": on}
    ruleset = _ruleset(_rule("r", 'alertname="DiskFull"', **extra))
    assert _names(decide(ruleset, _alert(status), dry_run=False)) == (["r"] if expected else [])


@pytest.mark.parametrize(
    "on",
    [
        pytest.param([], id="empty-list"),
        pytest.param("sometimes", id="unknown-state"),
        pytest.param(["both"], id="both-in-list"),
    ],
)
def test_on_rejects(on: object) -> None:
    with pytest.raises(ValidationError):
        Rule.model_validate({"name": "r", "playbook": "pb", "on": on})


SKIP_RULES = _ruleset(
    _rule("on-resolve", 'alertname="DiskFull"', on="resolved"),
    _rule("on-fire", 'alertname="DiskFull"'),
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param("firing", ["on-fire"], id="excluded-status-does-not-stop-search"),
        pytest.param("resolved", ["on-resolve"], id="matching-status-stops-search"),
    ],
)
def test_rule_whose_on_excludes_status_does_not_stop_later_rules(status: str, expected: list[str]) -> None:
    assert _names(decide(SKIP_RULES, _alert(status), dry_run=False)) == expected


def test_matching_rules_returns_compiled_rules_in_order() -> None:
    found = matching_rules(CONTINUE_RULES, {"alertname": "DiskFull", "severity": "critical"}, "firing")
    assert [compiled.source for compiled in found] == ["test:audit", "test:disk-critical", "test:disk-any"]


# --- rendering -------------------------------------------------------------------------------------------------

PARAM_BOOK = _playbook(
    target="svc/{{ params.service }}",
    steps=[
        {
            "name": "notify",
            "action": "http.request",
            "with": {
                "url": "{{ params.url }}",
                "json": {"title": "{{ params.title }}", "tags": "{{ params.tags }}", "who": "{{ rule.name }}"},
            },
        }
    ],
)


def test_params_are_rendered_from_the_alert_and_visible_to_steps() -> None:
    rule = _rule(
        "notify-rule",
        params={
            "service": "{{ alert.labels.service }}",
            "url": "https://hooks.example.com/{{ alert.labels.team }}",
            "title": "{{ alert.labels.alertname }} on {{ alert.labels.instance }}",
            "tags": ["{{ alert.labels.team }}", "static"],
            "count": 3,
        },
    )
    labels = {"service": "api", "team": "sre", "instance": "db-1"}
    [plan] = decide(_ruleset(rule, playbooks=(PARAM_BOOK,)), _alert(**labels), dry_run=False)
    assert plan.error is None
    assert plan.target == "svc/api"
    assert plan.steps[0].inputs == {
        "url": "https://hooks.example.com/sre",
        "json": {"title": "DiskFull on db-1", "tags": "['sre', 'static']", "who": "notify-rule"},
    }


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("{{ 7*7 }}", id="expression"),
        pytest.param("{% for x in range(3) %}x{% endfor %}", id="statement"),
        pytest.param("{{ params.url }}", id="names-another-param"),
        pytest.param("{{ alert.labels.__class__ }}", id="dunder"),
    ],
)
def test_rendered_params_are_not_rendered_twice(value: str) -> None:
    rule = _rule(
        "r",
        params={"service": "{{ alert.labels.evil }}", "url": "u", "title": "t-{{ alert.labels.evil }}", "tags": []},
    )
    [plan] = decide(_ruleset(rule, playbooks=(PARAM_BOOK,)), _alert(evil=value), dry_run=False)
    assert plan.error is None
    assert plan.target == f"svc/{value}"
    assert plan.steps[0].inputs["json"]["title"] == f"t-{value}"


# (playbook fields, rule params, text the error must contain after "plan not rendered: ")
MISSING_CASES = [
    pytest.param({"target": "pod/{{ alert.labels.pod }}"}, {}, "target: UndefinedError", id="target"),
    pytest.param({}, {"pod": "{{ alert.labels.pod }}"}, "params.pod: UndefinedError", id="param"),
    pytest.param(
        {"steps": [{"name": "restart", "action": "log", "with": {"message": "{{ alert.labels.pod }}"}}]},
        {},
        "restart.with.message: UndefinedError",
        id="named-step",
    ),
    pytest.param(
        {
            "steps": [
                {"action": "log", "with": {"message": "ok"}},
                {"action": "log", "with": {"message": "{{ alert.labels.pod }}"}},
            ]
        },
        {},
        "steps[1].with.message: UndefinedError",
        id="unnamed-step-by-index",
    ),
    pytest.param(
        {"steps": [{"name": "s", "action": "x", "with": {"args": ["a", "{{ alert.labels.pod }}"]}}]},
        {},
        "s.with.args[1]: UndefinedError",
        id="list-item",
    ),
    pytest.param(
        {"steps": [{"name": "s", "action": "log", "with": {"message": "{{ params.nope }}"}}]},
        {},
        "s.with.message: UndefinedError",
        id="missing-param",
    ),
]


@pytest.mark.parametrize(("book_fields", "params", "expected"), MISSING_CASES)
def test_missing_label_is_a_plan_error(book_fields: dict[str, Any], params: dict[str, Any], expected: str) -> None:
    book = _playbook(**book_fields)
    [plan] = decide(_ruleset(_rule("r", params=params), playbooks=(book,)), _alert(), dry_run=False)
    assert plan.error is not None
    assert plan.error.startswith(f"plan not rendered: {expected}")
    assert plan.steps == ()
    assert (plan.rule, plan.playbook) == ("r", "pb")


def test_label_triggered_runtime_error_is_a_plan_error() -> None:
    # A label value must never make decide() raise: the worker loop only survives errors reported in Plan.error.
    book = _playbook(
        steps=[{"name": "s", "action": "log", "with": {"message": "{{ 100 / (alert.labels.replicas | int) }}"}}]
    )
    [plan] = decide(_ruleset(_rule("r"), playbooks=(book,)), _alert(replicas="0"), dry_run=False)
    assert plan.error is not None
    assert plan.error.startswith("plan not rendered: s.with.message: ")


def test_missing_playbook_is_a_plan_error() -> None:
    ruleset = _ruleset(_rule("r", playbook="gone"), playbooks=())
    assert decide(ruleset, _alert(), dry_run=True) == [
        Plan(rule="r", playbook="gone", target="", dry_run=True, steps=(), error="playbook 'gone' not found")
    ]


# (global dry_run, rule dry_run or None, effective dry_run)
DRY_RUN_CASES = [
    pytest.param(False, None, False, id="global-off"),
    pytest.param(True, None, True, id="global-on"),
    pytest.param(True, False, False, id="rule-off-overrides-global-on"),
    pytest.param(False, True, True, id="rule-on-overrides-global-off"),
    pytest.param(True, True, True, id="both-on"),
    pytest.param(False, False, False, id="both-off"),
]


@pytest.mark.parametrize(("global_dry_run", "rule_dry_run", "expected"), DRY_RUN_CASES)
def test_dry_run(global_dry_run: bool, rule_dry_run: bool | None, expected: bool) -> None:
    extra = {} if rule_dry_run is None else {"dry_run": rule_dry_run}
    [plan] = decide(_ruleset(_rule("r", **extra)), _alert(), dry_run=global_dry_run)
    assert plan.error is None
    assert plan.dry_run is expected


@pytest.mark.parametrize(("global_dry_run", "rule_dry_run", "expected"), DRY_RUN_CASES)
def test_dry_run_also_on_failed_plans(global_dry_run: bool, rule_dry_run: bool | None, expected: bool) -> None:
    extra = {} if rule_dry_run is None else {"dry_run": rule_dry_run}
    rule = _rule("r", playbook="gone", **extra).rule
    assert plan_for(rule, None, _alert(), dry_run=global_dry_run).dry_run is expected


# (step as written, (timeout_seconds, retries, on_failure))
STEP_CASES = [
    pytest.param({"action": "log"}, (30.0, 0, "abort"), id="defaults"),
    pytest.param({"action": "log", "timeout": "1m30s"}, (90.0, 0, "abort"), id="timeout"),
    pytest.param({"action": "log", "timeout": "250ms"}, (0.25, 0, "abort"), id="timeout-millis"),
    pytest.param({"action": "log", "retries": 3}, (30.0, 3, "abort"), id="retries"),
    pytest.param({"action": "log", "on_failure": "continue"}, (30.0, 0, "continue"), id="on-failure"),
    pytest.param(
        {"action": "log", "timeout": "2h", "retries": 20, "on_failure": "continue"}, (7200.0, 20, "continue"), id="all"
    ),
]


@pytest.mark.parametrize(("step", "expected"), STEP_CASES)
def test_step_settings_are_carried_over(step: dict[str, Any], expected: tuple[float, int, str]) -> None:
    book = _playbook(steps=[{"name": "first", "action": "wait"}, {"name": "second", **step}])
    [plan] = decide(_ruleset(_rule("r"), playbooks=(book,)), _alert(), dry_run=False)
    assert plan.error is None
    second = plan.steps[1]
    assert (second.index, second.name, second.action) == (1, "second", "log")
    assert (second.timeout_seconds, second.retries, second.on_failure) == expected


# (target template, labels, rendered target)
TARGET_CASES = [
    pytest.param("static/target", {}, "static/target", id="static"),
    pytest.param("alert/{{ alert.labels.alertname }}/{{ alert.fingerprint }}", {}, "alert/DiskFull/fp1", id="label"),
    pytest.param(
        "deployment/{{ alert.labels.namespace }}/{{ alert.labels.deployment }}",
        {"namespace": "prod", "deployment": "api"},
        "deployment/prod/api",
        id="deployment",
    ),
    pytest.param("{{ alert.labels.x | default('none') }}", {}, "none", id="default-filter"),
    pytest.param("rule/{{ rule.name }}", {}, "rule/r", id="rule-name"),
]


@pytest.mark.parametrize(("target", "labels", "expected"), TARGET_CASES)
def test_target_is_rendered(target: str, labels: dict[str, str], expected: str) -> None:
    book = _playbook(target=target)
    [plan] = decide(_ruleset(_rule("r"), playbooks=(book,)), _alert(**labels), dry_run=False)
    assert plan.error is None
    assert plan.target == expected


# (the label rendered into the target, the plan error)
BAD_TARGET_CASES = [
    pytest.param("x" * 600, "target: 603 characters rendered, at most 512 allowed", id="too-long"),
    pytest.param("a\x00b", "target: holds the unprintable character '\\x00'", id="nul"),
    pytest.param("a\nb", "target: holds the unprintable character '\\n'", id="newline"),
]


@pytest.mark.parametrize(("value", "error"), BAD_TARGET_CASES)
def test_a_hostile_label_in_the_target_is_a_plan_error(value: str, error: str) -> None:
    book = _playbook(target="ns/{{ alert.labels.pod }}")
    [plan] = decide(_ruleset(_rule("r"), playbooks=(book,)), _alert(pod=value), dry_run=False)
    assert plan.error == f"plan not rendered: {error}"
    assert plan.steps == ()


def test_a_target_of_512_printable_characters_is_fine() -> None:
    book = _playbook(target="{{ alert.labels.pod }}")
    [plan] = decide(_ruleset(_rule("r"), playbooks=(book,)), _alert(pod="é" * 512), dry_run=False)
    assert plan.error is None and len(plan.target) == 512


def test_template_view_names_are_visible() -> None:
    book = _playbook(
        steps=[
            {
                "name": "s",
                "action": "log",
                "with": {
                    "message": "{{ alert.status }} {{ alert.startsAt }} {{ alert.generatorURL }} "
                    "{{ alert.annotations.summary }} {{ alert.receiver }} {{ alert.externalURL }}"
                },
            }
        ]
    )
    [plan] = decide(_ruleset(_rule("r", on="both"), playbooks=(book,)), _alert("resolved"), dry_run=False)
    assert plan.steps[0].inputs == {
        "message": "resolved 2024-05-01T10:00:00.000000Z http://prom/graph disk full autoremedy http://am"
    }


def test_a_dry_run_label_rehearses_whatever_the_rule_says() -> None:
    ruleset = _ruleset(_rule("r", "alertname=A", dry_run=False))
    [real] = decide(ruleset, _alert(alertname="A"), dry_run=False)
    [rehearsed] = decide(ruleset, _alert(alertname="A", autoremedy_dry_run="true"), dry_run=False)
    assert (real.dry_run, rehearsed.dry_run) == (False, True)
