"""Table-driven tests for YAML loading (line numbers, YAML 1.2 booleans) and for loading rules and playbooks."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from autoremedy.actions.registry import default_registry
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.yamlfile import FileProblems, LoadedYaml, Path_, Problem, load_yaml_file, load_yaml_text
from autoremedy.decide.planning import Ruleset, decide
from autoremedy.models.events import NewEvent

REPO = Path(__file__).resolve().parents[2]
ACTIONS = default_registry().input_models()


def _yaml(text: str) -> LoadedYaml:
    return load_yaml_text(textwrap.dedent(text).lstrip("\n"), file="f.yaml")


# --- load_yaml_text --------------------------------------------------------------------------------------------

# (scalar as written, value loaded): only true/false spellings are booleans, as in YAML 1.2.
SCALAR_CASES = [
    pytest.param("resolved", "resolved", id="resolved"),
    pytest.param("firing", "firing", id="firing"),
    pytest.param("on", "on", id="on"),
    pytest.param("On", "On", id="On"),
    pytest.param("ON", "ON", id="ON"),
    pytest.param("off", "off", id="off"),
    pytest.param("Off", "Off", id="Off"),
    pytest.param("yes", "yes", id="yes"),
    pytest.param("Yes", "Yes", id="Yes"),
    pytest.param("no", "no", id="no"),
    pytest.param("NO", "NO", id="NO"),
    pytest.param("y", "y", id="y"),
    pytest.param("n", "n", id="n"),
    pytest.param("true", True, id="true"),
    pytest.param("True", True, id="True"),
    pytest.param("TRUE", True, id="TRUE"),
    pytest.param("false", False, id="false"),
    pytest.param("False", False, id="False"),
    pytest.param("FALSE", False, id="FALSE"),
    pytest.param("null", None, id="null"),
    pytest.param("~", None, id="tilde"),
    pytest.param("3", 3, id="int"),
    pytest.param("1.5", 1.5, id="float"),
    pytest.param('"true"', "true", id="quoted-true"),
]


@pytest.mark.parametrize(("scalar", "expected"), SCALAR_CASES)
def test_scalar_values(scalar: str, expected: object) -> None:
    data = load_yaml_text(f"value: {scalar}\nlist: [{scalar}]\n", file="f.yaml").data
    assert data["value"] == expected
    assert type(data["value"]) is type(expected)
    assert data["list"] == [expected]


@pytest.mark.parametrize("key", ["on", "off", "yes", "no", "On", "y"])
def test_yaml11_boolean_words_stay_string_keys(key: str) -> None:
    data = load_yaml_text(f"{key}: resolved\n", file="f.yaml").data
    assert data == {key: "resolved"}
    assert True not in data
    assert False not in data


def test_rule_with_on_resolved_keeps_the_on_key() -> None:
    loaded = _yaml(
        """
        rules:
          - name: r
            on: resolved
            continue: true
            dry_run: false
        """
    )
    assert loaded.data == {"rules": [{"name": "r", "on": "resolved", "continue": True, "dry_run": False}]}


LINES_DOC = """
# leading comment
server:
  listen: 127.0.0.1:9095
rules:
  - name: first
    matchers:
      - a="b"
      - c="d"
    params:
      nested:
        deep: 1
  - name: second

    playbook: p
"""

# (path, 1-based line)
LINE_CASES = [
    pytest.param(("server",), 2, id="top-level-key"),
    pytest.param(("server", "listen"), 3, id="nested-key"),
    pytest.param(("rules",), 4, id="list-key"),
    pytest.param(("rules", 0), 5, id="list-item"),
    pytest.param(("rules", 0, "name"), 5, id="key-on-item-line"),
    pytest.param(("rules", 0, "matchers", 1), 8, id="scalar-list-item"),
    pytest.param(("rules", 0, "params", "nested", "deep"), 11, id="deep-key"),
    pytest.param(("rules", 1, "playbook"), 14, id="after-blank-line"),
    pytest.param(("rules", 0, "params", "nested", "missing", 3), 10, id="deepest-known-prefix"),
    pytest.param(("rules", 7, "name"), 4, id="index-out-of-range-falls-back-to-list"),
    pytest.param(("nowhere",), 2, id="unknown-top-level-falls-back-to-document"),
]


@pytest.mark.parametrize(("path", "line"), LINE_CASES)
def test_line_of(path: Path_, line: int) -> None:
    assert _yaml(LINES_DOC).line_of(path) == line


def test_line_of_empty_document_is_one() -> None:
    loaded = load_yaml_text("", file="f.yaml")
    assert loaded.data is None
    assert loaded.line_of(("rules", 0)) == 1


# (document, line of the duplicate, duplicated key)
DUPLICATE_CASES = [
    pytest.param("a: 1\nb: 2\na: 3\n", 3, "a", id="top-level"),
    pytest.param("a:\n  b: 1\n  c: 2\n  b: 3\n", 4, "b", id="nested"),
    pytest.param("rules:\n  - name: x\n    on: firing\n    on: resolved\n", 4, "on", id="in-list-item"),
    pytest.param("k: {a: 1, a: 2}\n", 1, "a", id="flow-mapping"),
]


@pytest.mark.parametrize(("text", "line", "key"), DUPLICATE_CASES)
def test_duplicate_keys_are_reported_with_their_line(text: str, line: int, key: str) -> None:
    with pytest.raises(FileProblems) as caught:
        load_yaml_text(text, file="dup.yaml")
    assert caught.value.problems == [Problem("dup.yaml", line, f"duplicate key {key!r}")]
    assert str(caught.value) == f"dup.yaml:{line}: duplicate key {key!r}"


def test_every_duplicate_is_reported() -> None:
    with pytest.raises(FileProblems) as caught:
        load_yaml_text("a: 1\na: 2\nb:\n  c: 1\n  c: 2\n", file="dup.yaml")
    assert [(p.line, p.message) for p in caught.value.problems] == [(2, "duplicate key 'a'"), (5, "duplicate key 'c'")]


# (document, line of the error)
INVALID_CASES = [
    pytest.param("a: [1, 2\nb: 3\n", 2, id="unclosed-flow-list"),
    pytest.param("a: b: c\n", 1, id="mapping-in-plain-scalar"),
    pytest.param("ok: 1\na:\n\tb: 1\n", 3, id="tab-indent"),
    pytest.param("- a\nb: 1\n", 2, id="list-then-mapping"),
    pytest.param("x: 1\ny: 2\nz: 'open\n", 4, id="unterminated-quote"),
    pytest.param("a: !!python/object:os.system x\n", 1, id="unsafe-tag"),
]


@pytest.mark.parametrize(("text", "line"), INVALID_CASES)
def test_invalid_yaml_is_reported_with_its_line(text: str, line: int) -> None:
    with pytest.raises(FileProblems) as caught:
        load_yaml_text(text, file="bad.yaml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == ("bad.yaml", line)
    assert problem.message.startswith("invalid YAML: ")


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(FileProblems) as caught:
        load_yaml_file(missing)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(missing), 1)
    assert problem.message.startswith("cannot read: ")


# --- load_ruleset on the repository's examples -----------------------------------------------------------------


def _event_view(status: str, **labels: str) -> dict[str, Any]:
    event = NewEvent(
        fingerprint="fp",
        status=status,
        starts_at="2024-05-01T10:00:00.000000Z",
        ends_at=None,
        labels=labels,
        annotations={},
        generator_url="",
        receiver="",
        external_url="",
        group_key="",
    )
    return event.template_view()


@pytest.fixture(scope="module")
def repo_ruleset() -> Ruleset:
    return load_ruleset(REPO / "rules", REPO / "playbooks", actions=ACTIONS)


def test_repository_rules_and_playbooks_load(repo_ruleset: Ruleset) -> None:
    assert [compiled.rule.name for compiled in repo_ruleset.rules] == [
        "demo-app-down",
        "demo-app-recovered",
        "high-latency-incident",
        "crashloop-restart",
        "failed-deploy-rollback",
        "latency-scale-out",
        "stuck-pod-delete",
        "abusive-client-ban",
        "blocklisted-client-ban",
        "blocklisted-client-unban",
        "postgres-primary-failover",
    ]
    assert sorted(repo_ruleset.playbooks) == [
        "ban-abusive-ip",
        "delete-stuck-pod",
        "failover-postgres",
        "open-incident",
        "record-alert",
        "restart-deployment",
        "rollback-deployment",
        "scale-out",
        "unban-ip",
    ]
    sources = [compiled.source.rsplit("/", 1)[-1] for compiled in repo_ruleset.rules]
    assert sources == [
        "10-demo.yaml:7",
        "10-demo.yaml:14",
        "20-latency.yaml:5",
        "30-kubernetes.yaml:5",
        "30-kubernetes.yaml:15",
        "30-kubernetes.yaml:23",
        "30-kubernetes.yaml:34",
        "40-security-and-db.yaml:7",
        "40-security-and-db.yaml:21",
        "40-security-and-db.yaml:31",
        "40-security-and-db.yaml:44",
    ]
    assert repo_ruleset.rules[1].rule.on == frozenset({"resolved"})


# (status, labels, rules that run)
REPO_DECIDE_CASES = [
    pytest.param(
        "firing",
        {"alertname": "DemoAppDown", "severity": "critical"},
        ["demo-app-down"],
        id="demo-firing-skips-resolved-rule",
    ),
    pytest.param(
        "resolved", {"alertname": "DemoAppDown", "severity": "critical"}, ["demo-app-recovered"], id="demo-resolved"
    ),
    pytest.param(
        "firing",
        {"alertname": "HighRequestLatency", "severity": "page", "namespace": "prod", "service": "api"},
        ["high-latency-incident"],
        id="latency",
    ),
    pytest.param(
        "firing",
        {"alertname": "HighRequestLatency", "severity": "page", "namespace": "sandbox-1", "service": "api"},
        [],
        id="latency-in-sandbox-ignored",
    ),
    pytest.param(
        "firing", {"alertname": "AbusiveClientIP", "client_ip": "203.0.113.7"}, ["abusive-client-ban"], id="abuse-ban"
    ),
    pytest.param(
        "resolved", {"alertname": "AbusiveClientIP", "client_ip": "203.0.113.7"}, [], id="abuse-ban-left-to-expire"
    ),
    pytest.param(
        "firing",
        {"alertname": "ClientOnBlocklist", "client_ip": "203.0.113.7"},
        ["blocklisted-client-ban"],
        id="blocklist-ban",
    ),
    pytest.param(
        "resolved",
        {"alertname": "ClientOnBlocklist", "client_ip": "203.0.113.7"},
        ["blocklisted-client-unban"],
        id="blocklist-unban",
    ),
    pytest.param(
        "firing",
        {"alertname": "PostgresPrimaryDown", "database": "orders", "namespace": "prod"},
        ["postgres-primary-failover"],
        id="postgres-failover",
    ),
]


@pytest.mark.parametrize(("status", "labels", "expected"), REPO_DECIDE_CASES)
def test_repository_rules_decide(
    repo_ruleset: Ruleset, status: str, labels: dict[str, str], expected: list[str]
) -> None:
    plans = decide(repo_ruleset, _event_view(status, **labels), dry_run=False)
    assert [plan.rule for plan in plans] == expected
    assert all(plan.error is None for plan in plans)


def test_repository_failover_plan(repo_ruleset: Ruleset) -> None:
    labels = {"alertname": "PostgresPrimaryDown", "database": "orders", "namespace": "prod"}
    [plan] = decide(repo_ruleset, _event_view("firing", **labels), dry_run=False)
    assert plan.target == "database/orders"
    assert [(step.action, step.inputs) for step in plan.steps] == [
        ("postgres.promote", {"database": "orders"}),
        (
            "kubernetes.patch_service_selector",
            {
                "namespace": "prod",
                "name": "orders-primary",
                "selector": {"app": "orders", "statefulset.kubernetes.io/pod-name": "orders-1"},
            },
        ),
        ("postgres.check_writable", {"database": "orders", "server": "replica"}),
    ]


def test_repository_ban_plan(repo_ruleset: Ruleset) -> None:
    labels = {"alertname": "ClientOnBlocklist", "client_ip": "203.0.113.7", "list": "spamhaus-drop"}
    [plan] = decide(repo_ruleset, _event_view("firing", **labels), dry_run=False)
    assert (plan.target, plan.steps[0].action) == ("ip/203.0.113.7", "crowdsec.ban")
    assert plan.steps[0].inputs == {"ip": "203.0.113.7", "duration": "7d", "reason": "listed by spamhaus-drop"}


# --- load_ruleset on a broken set: every problem, each at its line -----------------------------------------------

BROKEN_FILES = {
    "playbooks/good.yaml": """
        name: good
        target: "svc/{{ alert.labels.service }}"
        steps:
          - action: log
            with:
              message: hello
        """,
    "playbooks/steps.yaml": """
        name: steps
        target: "x/{{ alert.labels.a }"
        steps:
          - name: unknown-action
            action: shell.exec
          - name: unknown-input
            action: log
            with:
              message: hi
              colour: red
          - name: no-url
            action: http.request
            with:
              method: POST
          - name: bad-template
            action: log
            with:
              level: info
              message: "{{ alert.labels.a "
        """,
    "playbooks/timeout.yaml": """
        name: bad-timeout
        target: t
        steps:
          - action: wait
            timeout: 5
        """,
    "rules/10-unknown-key.yaml": """
        rules:
          - name: typo
            playbook: good
            matcher: ['a="b"']
        """,
    "rules/20-rules.yaml": """
        rules:
          - name: bad-matcher
            matchers:
              - alertname="x"
              - severity critical
            playbook: good
          - name: missing-playbook
            playbook: nope
          - name: bad-param
            playbook: good
            params:
              ok: fine
              broken: "{% if %}"
          - name: bad-matcher
            playbook: good
        """,
    "rules/30-dup.yaml": """
        rules:
          - name: bad-param
            playbook: good
        """,
}

# (file, line, start of the message)
EXPECTED_PROBLEMS = [
    pytest.param("playbooks/steps.yaml", 2, "target: template does not compile: ", id="target-template"),
    pytest.param(
        "playbooks/steps.yaml", 5, "steps.0.action: unknown action 'shell.exec' (known: ", id="unknown-action"
    ),
    pytest.param("playbooks/steps.yaml", 10, "unknown input 'colour' (known: message, level)", id="unknown-input"),
    pytest.param("playbooks/steps.yaml", 13, "required input 'url' is missing", id="missing-required-input"),
    pytest.param("playbooks/steps.yaml", 19, "steps.3.with.message: template does not compile: ", id="step-template"),
    pytest.param(
        "playbooks/timeout.yaml", 5, "steps.0.timeout: Value error, invalid duration 5: add a unit", id="bad-duration"
    ),
    pytest.param("rules/10-unknown-key.yaml", 4, "rules.0.matcher: unknown key 'matcher'", id="unknown-rule-key"),
    pytest.param("rules/20-rules.yaml", 5, "invalid matcher 'severity critical': ", id="bad-matcher"),
    pytest.param("rules/20-rules.yaml", 8, "rule 'missing-playbook': playbook 'nope' not found", id="unknown-playbook"),
    pytest.param("rules/20-rules.yaml", 13, "rules.2.params.broken: template does not compile: ", id="param-template"),
    pytest.param("rules/20-rules.yaml", 14, "rule 'bad-matcher' defined twice", id="duplicate-rule-same-file"),
    pytest.param("rules/30-dup.yaml", 2, "rule 'bad-param' defined twice", id="duplicate-rule-other-file"),
]


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Problem]]:
    root = tmp_path_factory.mktemp("broken")
    _write_tree(root, BROKEN_FILES)
    with pytest.raises(FileProblems) as caught:
        load_ruleset(root / "rules", root / "playbooks", actions=ACTIONS)
    return root, caught.value.problems


@pytest.mark.parametrize(("file", "line", "message"), EXPECTED_PROBLEMS)
def test_broken_set_reports_problem(broken: tuple[Path, list[Problem]], file: str, line: int, message: str) -> None:
    root, problems = broken
    path = str(root / file)
    in_file = [str(p) for p in problems if p.file == path and message in p.message]
    assert in_file, f"no problem {message!r} in {file}; got {[str(p) for p in problems]}"
    assert [text.split(": ", 1)[0] for text in in_file] == [f"{path}:{line}"]
    assert in_file[0].startswith(f"{path}:{line}: {message}")


def test_broken_set_reports_nothing_else(broken: tuple[Path, list[Problem]]) -> None:
    _, problems = broken
    assert len(problems) == len(EXPECTED_PROBLEMS), "\n".join(str(p) for p in problems)


def test_broken_set_exception_lists_every_problem(tmp_path: Path) -> None:
    _write_tree(tmp_path, BROKEN_FILES)
    with pytest.raises(FileProblems) as caught:
        load_ruleset(tmp_path / "rules", tmp_path / "playbooks", actions=ACTIONS)
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]


# Smaller sets, one problem each: (files, file with the problem, line, start of the message)
SINGLE_PROBLEM_CASES = [
    pytest.param(
        {
            "playbooks/a.yaml": "name: same\ntarget: t\nsteps:\n  - action: log\n    with: {message: m}\n",
            "playbooks/b.yaml": "# again\nname: same\ntarget: t\nsteps:\n  - action: log\n    with: {message: m}\n",
            "rules/r.yaml": "rules: []\n",
        },
        "playbooks/b.yaml",
        2,
        "playbook 'same' defined twice",
        id="duplicate-playbook",
    ),
    pytest.param(
        {"playbooks/a.yaml": "name: p\ntarget: t\nsteps: []\n", "rules/r.yaml": "rules: []\n"},
        "playbooks/a.yaml",
        3,
        "steps: List should have at least 1 item",
        id="playbook-without-steps",
    ),
    pytest.param(
        {"playbooks/a.yaml": "name: p\ntarget: t\nsteps:\n  - with: {message: m}\n", "rules/r.yaml": "rules: []\n"},
        "playbooks/a.yaml",
        4,
        "steps.0.action: required key is missing",
        id="step-without-action",
    ),
    pytest.param(
        {
            "playbooks/a.yaml": "name: p\ntarget: t\nsteps:\n  - action: log\n    with: {message: m}\n",
            "rules/r.yaml": "rules:\n  - name: r\n    playbook: p\n    on: sometimes\n",
        },
        "rules/r.yaml",
        4,
        "rules.0.on.",
        id="bad-on-value",
    ),
    pytest.param(
        {"playbooks/a.yaml": "name: p\ntarget: t\nsteps:\n  - action: log\n    with: {message: m}\n"},
        "rules",
        1,
        "folder not found",
        id="missing-rules-folder",
    ),
    pytest.param(
        {"playbooks/a.yaml": "name: p\nname: q\n", "rules/r.yaml": "rules: []\n"},
        "playbooks/a.yaml",
        2,
        "duplicate key 'name'",
        id="duplicate-yaml-key",
    ),
]


@pytest.mark.parametrize(("files", "file", "line", "message"), SINGLE_PROBLEM_CASES)
def test_single_problem(tmp_path: Path, files: dict[str, str], file: str, line: int, message: str) -> None:
    _write_tree(tmp_path, files)
    with pytest.raises(FileProblems) as caught:
        load_ruleset(tmp_path / "rules", tmp_path / "playbooks", actions=ACTIONS)
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / file}:{line}: {message}")


def test_yml_extension_is_read_too(tmp_path: Path) -> None:
    _write_tree(
        tmp_path,
        {
            "playbooks/a.yml": "name: p\ntarget: t\nsteps:\n  - action: log\n    with: {message: m}\n",
            "rules/r.yml": "rules:\n  - name: r\n    playbook: p\n",
        },
    )
    ruleset = load_ruleset(tmp_path / "rules", tmp_path / "playbooks", actions=ACTIONS)
    assert [compiled.rule.name for compiled in ruleset.rules] == ["r"]
    assert list(ruleset.playbooks) == ["p"]
