"""`autoremedy test`: the shipped examples pass and cover every rule; each deliberately broken rule set (every
matcher value changed, every playbook swapped, a cooldown removed, `continue` flipped) makes a case fail with a
readable diff; malformed test files are file:line errors (exit 2); every guardrail verdict can be expected."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoremedy.actions.registry import default_registry
from autoremedy.cli import main
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.yamlfile import load_yaml_file
from autoremedy.decide.matchers import parse_matcher

ROOT = Path(__file__).resolve().parents[2]
Mutation = Callable[[dict[str, Any]], None]


def copy_examples(root: Path) -> Path:
    for folder in ("rules", "playbooks", "rule-tests"):
        shutil.copytree(ROOT / folder, root / folder)
    config = root / "autoremedy.yaml"
    config.write_text("rules_dir: rules\nplaybooks_dir: playbooks\nrule_tests_dir: rule-tests\n")
    return config


def run_test(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["test", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_shipped_examples_pass_and_every_rule_is_covered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_test(capsys, "--config", str(ROOT / "autoremedy.yaml"), "--coverage")
    assert code == 0, out + err
    assert "0 failed" in out
    ruleset = load_ruleset(ROOT / "rules", ROOT / "playbooks", actions=default_registry().input_models())
    assert f"coverage: {len(ruleset.rules)}/{len(ruleset.rules)} rules matched by a case" in out


def test_the_examples_show_every_built_in_action() -> None:
    used = {
        step["action"] for path in (ROOT / "playbooks").glob("*.yaml") for step in load_yaml_file(path).data["steps"]
    }
    assert set(default_registry().input_models()) - used == set()


# -- the table of broken rule sets ----------------------------------------------------------------------------


def _rule_files(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted((root / "rules").glob("*.yaml")):
        yield path, load_yaml_file(path).data


def _mutations() -> Iterator[Any]:
    playbooks = sorted(load_yaml_file(p).data["name"] for p in (ROOT / "playbooks").glob("*.yaml"))
    for path, data in _rule_files(ROOT):
        for rule_index, rule in enumerate(data["rules"]):
            for matcher_index, text in enumerate(rule["matchers"]):
                matcher = parse_matcher(text)
                for how, value in (("replaced", "zz-mutated"), ("extended", matcher.value + "x")):
                    changed = f"{matcher.name}{matcher.type.value}{json.dumps(value)}"
                    yield pytest.param(
                        path.name,
                        _set_matcher(rule_index, matcher_index, changed),
                        id=f"{rule['name']}-matcher-{matcher_index}-{how}",
                    )
            other = next(
                name
                for name in playbooks[playbooks.index(rule["playbook"]) + 1 :] + playbooks
                if name != rule["playbook"]
            )
            yield pytest.param(path.name, _set(rule_index, "playbook", other), id=f"{rule['name']}-playbook-{other}")
            if "cooldown" in rule:
                yield pytest.param(path.name, _drop(rule_index, "cooldown"), id=f"{rule['name']}-cooldown-removed")
            if rule.get("continue"):
                yield pytest.param(path.name, _set(rule_index, "continue", False), id=f"{rule['name']}-continue-off")


def _set_matcher(rule_index: int, matcher_index: int, text: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["rules"][rule_index]["matchers"][matcher_index] = text

    return mutate


def _set(rule_index: int, key: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["rules"][rule_index][key] = value

    return mutate


def _drop(rule_index: int, key: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        del data["rules"][rule_index][key]

    return mutate


@pytest.mark.parametrize(("file", "mutate"), list(_mutations()))
def test_a_broken_rule_set_fails_with_a_readable_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, mutate: Mutation
) -> None:
    config = copy_examples(tmp_path)
    path = tmp_path / "rules" / file
    data = load_yaml_file(path).data
    mutate(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = run_test(capsys, "--config", str(config))
    assert code == 1, out + err
    assert "FAILED:" in out and "expected" in out and ", got " in out
    assert " 0 failed" not in out


def test_turning_continue_on_where_it_was_off_is_caught_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy_examples(tmp_path)
    path = tmp_path / "rules" / "40-security-and-db.yaml"
    data = load_yaml_file(path).data
    data["rules"][1]["continue"] = True  # blocklisted-client-ban: then the unban rule (on: resolved) is tried
    data["rules"][2]["on"] = "both"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, _ = run_test(capsys, "--config", str(config))
    assert code == 1
    assert "blocklisted-client-unban" in out


def test_the_diff_names_the_case_the_alert_and_both_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy_examples(tmp_path)
    path = tmp_path / "rules" / "40-security-and-db.yaml"
    path.write_text(path.read_text().replace("cooldown: 30m", "cooldown: 5m"))
    code, out, _ = run_test(capsys, "--config", str(config))
    assert code == 1
    test_file = tmp_path / "rule-tests" / "40-security-and-db.yaml"
    assert f"{test_file}:4: an abusive client is banned for 4 hours, not again within 30 minutes" in out
    assert "alert 2 (at 10m): runs[0].verdict: expected 'cooldown', got 'allowed'" in out
    assert out.rstrip().endswith("16 passed, 1 failed")


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy_examples(tmp_path)
    path = tmp_path / "rules" / "30-kubernetes.yaml"
    path.write_text(path.read_text().replace("playbook: rollback-deployment", "playbook: restart-deployment"))
    code, out, _ = run_test(capsys, "--config", str(config), "--output", "json", "--coverage")
    assert code == 1
    report = json.loads(out)
    assert (report["passed"], report["failed"]) == (16, 1)
    [failed] = [case for case in report["cases"] if not case["passed"]]
    assert failed["name"] == "a failed rollout is rolled back, whichever alert reports it"
    assert {
        "alert": 1,
        "at": "0s",
        "field": "runs[0].playbook",
        "expected": "rollback-deployment",
        "got": "restart-deployment",
    } in failed["mismatches"]
    assert report["uncovered"] == []


# -- malformed test files -------------------------------------------------------------------------------------

ONE_CASE = """\
tests:
  - name: one
    alerts:
      - labels: {alertname: DemoAppDown, severity: critical}
        expect:
          runs: [{rule: demo-app-down}]
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("tests:\n  - name: x\n    alerts: [\n  - oops: {\n", 4, "invalid YAML", id="yaml"),
        pytest.param(ONE_CASE.replace("expect:", "expects:"), 5, "unknown key 'expects'", id="unknown-key"),
        pytest.param(
            ONE_CASE.replace("rule: demo-app-down", "rule: demo-app-dwn"),
            6,
            "unknown rule 'demo-app-dwn'",
            id="unknown-rule",
        ),
        pytest.param(
            ONE_CASE.replace("{rule: demo-app-down}", "{rule: demo-app-down, playbook: nope}"),
            6,
            "unknown playbook 'nope'",
            id="unknown-playbook",
        ),
        pytest.param(
            ONE_CASE.replace("- labels:", "- at: 5x\n        labels:"), 4, "invalid duration '5x'", id="bad-duration"
        ),
        pytest.param(
            ONE_CASE.replace("runs: [{rule: demo-app-down}]", "runs: [{rule: demo-app-down, verdict: ok}]"),
            6,
            "runs.0.verdict",
            id="unknown-verdict",
        ),
        pytest.param(
            ONE_CASE + "      - at: 1m\n        labels: {a: b}\n      - at: 30s\n        labels: {a: b}\n",
            2,
            "time order",
            id="time-order",
        ),
        pytest.param("tests: []\n", 1, "tests", id="no-cases"),
    ],
)
def test_a_malformed_test_file_is_a_file_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    config = copy_examples(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, out, err = run_test(capsys, "--config", str(config), str(bad))
    assert code == 2, out + err
    assert f"{bad}:{line}: " in err and message in err, err


def test_a_missing_test_file_and_a_broken_rule_set_are_file_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy_examples(tmp_path)
    code, _, err = run_test(capsys, "--config", str(config), str(tmp_path / "nope.yaml"))
    assert (code, f"{tmp_path / 'nope.yaml'}:1: no such file or folder") == (2, err.strip())
    (tmp_path / "rules" / "10-demo.yaml").write_text("rules:\n  - name: x\n    playbook: missing\n")
    code, _, err = run_test(capsys, "--config", str(config))
    assert code == 2
    assert f"{tmp_path / 'rules' / '10-demo.yaml'}:3: rule 'x': playbook 'missing' not found" in err


def test_config_is_accepted_after_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(ROOT / "autoremedy.yaml")
    assert main(["validate", "--config", config]) == 0
    assert main(["--config", "/nonexistent.yaml", "validate", "--config", config]) == 0  # the later one wins
    assert main(["validate", "--config", "/nonexistent.yaml"]) == 1
    assert "/nonexistent.yaml: config file not found" in capsys.readouterr().err
    for argv in (
        ["runs", "list"],
        ["runs", "show", "x"],
        ["status"],
        ["breaker", "close"],
        ["backtest", "--since", "1h"],
    ):
        assert main([*argv, "--config", "/nonexistent.yaml"]) == 1, argv
        assert "/nonexistent.yaml: config file not found" in capsys.readouterr().err


# -- every guardrail verdict can be expected ------------------------------------------------------------------

VERDICT_RULES = """\
rules:
  - {name: ask, matchers: [alertname=Ask], playbook: p, approval: required}
  - {name: slow, matchers: [alertname=Slow], playbook: p, delay: 2m}
  - {name: any, matchers: [alertname=Any], playbook: p}
  - {name: broken, matchers: [alertname=Broken], playbook: needs-label}
  - {name: fix, matchers: [alertname=Fix], playbook: call}
"""
VERDICT_PLAYBOOKS = {
    "p": "name: p\ntarget: 't/{{ alert.labels.t }}'\nsteps: [{action: log, with: {message: '{{ alert.labels.t }}'}}]\n",
    "needs-label": "name: needs-label\ntarget: 't/{{ alert.labels.nope }}'\nsteps: [{action: wait}]\n",
    # A playbook that changes something: the breaker counts only such runs (a log-only one neither counts nor is
    # blocked, as the daemon decides it).
    "call": "name: call\ntarget: 't/{{ alert.labels.t }}'\n"
    "steps: [{action: http.request, with: {url: 'https://hooks.example.com/fix'}}]\n",
}
VERDICT_TESTS = """\
tests:
  - name: approval, then the target is busy until it expires
    guardrails: {approval_timeout: 10m}
    alerts:
      - {labels: {alertname: Ask, t: a}, expect: {runs: [{rule: ask, verdict: awaiting_approval}]}}
      - {at: 5m, labels: {alertname: Any, t: a}, expect: {runs: [{rule: any, verdict: target_busy}]}}
      - {at: 10m, labels: {alertname: Any, t: a}, expect: {runs: [{rule: any, verdict: allowed}]}}
  - name: a delay is cancelled by the resolve, once
    alerts:
      - {labels: {alertname: Slow, t: b}, expect: {runs: [{rule: slow, verdict: delayed}]}}
      - {at: 1m, status: resolved, labels: {alertname: Slow, t: b}, expect: {runs: [], cancelled: [slow]}}
      - {at: 2m, labels: {alertname: Slow, t: c}, expect: {runs: [{rule: slow, verdict: delayed}]}}
      - {at: 5m, status: resolved, labels: {alertname: Slow, t: c}, expect: {cancelled: []}}
  - name: maintenance windows defer or skip
    start: 2026-01-06T02:30:00Z
    guardrails:
      maintenance_windows:
        - {name: nightly, days: [tue], at: "02:00", duration: 2h, matchers: [t=night]}
        - {name: freeze, start: 2026-01-06T00:00:00Z, end: 2026-01-07T00:00:00Z, action: skip, matchers: [t=frozen]}
    alerts:
      - {labels: {alertname: Any, t: night}, expect: {runs: [{rule: any, verdict: maintenance}]}}
      - {labels: {alertname: Any, t: frozen}, expect: {runs: [{rule: any, verdict: maintenance}]}}
      - {labels: {alertname: Any, t: day}, expect: {runs: [{rule: any, verdict: allowed}]}}
  - name: the breaker opens on a storm of runs that change something, not of runs that only log
    guardrails: {breaker: {max_runs: 2, within: 10m}}
    alerts:
      - {labels: {alertname: Fix, t: s1}, expect: {runs: [{rule: fix, verdict: allowed}]}}
      - {labels: {alertname: Any, t: s2}, expect: {runs: [{rule: any, verdict: allowed}]}}
      - {labels: {alertname: Fix, t: s3}, expect: {runs: [{rule: fix, verdict: allowed}]}}
      - {labels: {alertname: Any, t: s4}, expect: {runs: [{rule: any, verdict: allowed}]}}
      - {labels: {alertname: Fix, t: s5}, expect: {runs: [{rule: fix, verdict: breaker_open}]}}
  - name: paused rules and unrenderable plans
    paused: [any]
    alerts:
      - {labels: {alertname: Any, t: p}, expect: {runs: [{rule: any, verdict: paused}]}}
      - {labels: {alertname: Broken, t: p}, expect: {runs: [{rule: broken, verdict: plan_failed}]}}
"""


def test_every_guardrail_verdict_can_be_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(VERDICT_RULES)
    for name, text in VERDICT_PLAYBOOKS.items():
        (tmp_path / "playbooks" / f"{name}.yaml").write_text(text)
    (tmp_path / "verdicts.yaml").write_text(VERDICT_TESTS)
    config = tmp_path / "autoremedy.yaml"
    config.write_text("{}\n")
    code, out, err = run_test(capsys, "--config", str(config), str(tmp_path / "verdicts.yaml"))
    assert code == 0, out + err
    assert "5 passed, 0 failed" in out
    # Every expectation above can fail: flip each verdict to another and the case fails.
    for verdict in (
        "awaiting_approval",
        "target_busy",
        "delayed",
        "maintenance",
        "breaker_open",
        "paused",
        "plan_failed",
    ):
        (tmp_path / "verdicts.yaml").write_text(VERDICT_TESTS.replace(f"verdict: {verdict}", "verdict: cooldown", 1))
        code, out, _ = run_test(capsys, "--config", str(config), str(tmp_path / "verdicts.yaml"))
        assert code == 1 and f"expected 'cooldown', got '{verdict}'" in out, verdict
    (tmp_path / "verdicts.yaml").write_text(VERDICT_TESTS.replace("cancelled: [slow]", "cancelled: []"))
    code, out, _ = run_test(capsys, "--config", str(config), str(tmp_path / "verdicts.yaml"))
    assert code == 1 and "cancelled: expected [], got ['slow']" in out


def test_coverage_lists_the_rules_no_case_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy_examples(tmp_path)
    rules = tmp_path / "rules" / "50-new.yaml"
    rules.write_text("rules:\n  - name: untested\n    matchers: [alertname=Nobody]\n    playbook: record-alert\n")
    code, out, _ = run_test(capsys, "--config", str(config), "--coverage")
    assert code == 0  # coverage informs; the cases still pass
    assert "coverage: 11/12 rules matched by a case" in out
    assert f"  not matched: untested ({rules}:2)" in out
    code, out, _ = run_test(capsys, "--config", str(config), "--coverage", "--output", "json")
    assert json.loads(out)["uncovered"] == [{"rule": "untested", "source": f"{rules}:2"}]


def test_a_configured_secret_never_shows_in_the_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RULE_TESTS_HOOK_TOKEN", "s3cret-hook-token-value")
    (tmp_path / "rules").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("rules: [{name: hook, matchers: [alertname=A], playbook: call}]\n")
    (tmp_path / "playbooks" / "call.yaml").write_text(
        "name: call\ntarget: hook\nsteps:\n  - action: http.request\n    with:\n"
        "      url: https://hooks.example.com/x\n"
        "      headers: {X-Token: '{{ secret(\"hook\") }}'}\n"
    )
    (tmp_path / "t.yaml").write_text(
        "tests:\n  - name: n\n    alerts:\n      - labels: {alertname: A}\n        expect:\n"
        "          runs: [{rule: hook, steps: [{with: {headers: {X-Token: wrong}}}]}]\n"
    )
    config = tmp_path / "autoremedy.yaml"
    config.write_text("secrets:\n  hook: {env: RULE_TESTS_HOOK_TOKEN}\n")
    for output in ("text", "json"):
        code, out, err = run_test(capsys, "--config", str(config), "--output", output, str(tmp_path / "t.yaml"))
        assert code == 1, out + err
        assert "X-Token" in out and "wrong" in out
        assert "s3cret-hook-token-value" not in out + err
