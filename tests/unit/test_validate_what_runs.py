"""`autoremedy validate` and loading check what will run: JSON-safe values and each step's inputs by type."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autoremedy.actions.registry import default_registry
from autoremedy.cli import main
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.settings import load_settings
from autoremedy.config.yamlfile import FileProblems

ACTIONS = default_registry().input_models()
RULES = "rules:\n  - name: r\n    playbook: p\n"


def _tree(root: Path, playbook: str, rules: str = RULES) -> None:
    (root / "playbooks").mkdir(parents=True, exist_ok=True)
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "playbooks" / "p.yaml").write_text(textwrap.dedent(playbook).lstrip("\n"))
    (root / "rules" / "r.yaml").write_text(rules)


def _problems(root: Path) -> list[str]:
    with pytest.raises(FileProblems) as caught:
        load_ruleset(root / "rules", root / "playbooks", actions=ACTIONS)
    return [str(problem) for problem in caught.value.problems]


UNQUOTED_DATE = """
    name: p
    target: t
    steps:
      - action: http.request
        with:
          url: http://127.0.0.1:9/hook
          json:
            since: 2024-01-01
"""


def test_an_unquoted_yaml_date_is_a_file_line_error(tmp_path: Path) -> None:
    _tree(tmp_path, UNQUOTED_DATE)
    assert _problems(tmp_path) == [
        f"{tmp_path / 'playbooks/p.yaml'}:8: steps.0.with.json.since: datetime.date(2024, 1, 1) is a YAML date, "
        "not a JSON value; quote it to pass it as a string"
    ]


def test_autoremedy_validate_fails_on_it_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tree(tmp_path, UNQUOTED_DATE)
    config = tmp_path / "autoremedy.yaml"
    config.write_text("rules_dir: rules\nplaybooks_dir: playbooks\n")
    assert main(["--config", str(config), "validate"]) == 1
    assert f"{tmp_path / 'playbooks/p.yaml'}:8: steps.0.with.json.since" in capsys.readouterr().err


# (a step, the line of the problem, the message)
TYPE_CASES = [
    pytest.param(
        "  - action: wait\n    with:\n      duration: [1, 2]\n",
        6,
        "steps.0.with.duration: ",
        id="wrong-type",
    ),
    pytest.param(
        "  - action: http.request\n    with:\n      url: not a url\n",
        6,
        "steps.0.with.url: Input should be a valid URL",
        id="bad-url",
    ),
    pytest.param(
        "  - action: log\n    with:\n      message: m\n      level: loud\n",
        7,
        "steps.0.with.level: Input should be 'debug', 'info', 'warning' or 'error'",
        id="bad-literal",
    ),
    pytest.param(
        "  - action: http.request\n    with:\n      url: http://x\n      headers: {1: a}\n",
        7,
        "steps.0.with.headers: key 1 is not a string (quote it)",
        id="number-as-key",
    ),
]


@pytest.mark.parametrize(("step", "line", "message"), TYPE_CASES)
def test_step_inputs_are_validated_by_type(tmp_path: Path, step: str, line: int, message: str) -> None:
    _tree(tmp_path, "name: p\ntarget: t\nsteps:\n" + step)
    problems = _problems(tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'playbooks/p.yaml'}:{line}: {message}"), problems


def test_a_template_stands_for_any_value_of_the_right_type(tmp_path: Path) -> None:
    playbook = """
        name: p
        target: t
        steps:
          - action: http.request
            with:
              url: "{{ alert.annotations.hook }}"
              expect_status: ["{{ params.status }}"]
          - action: wait
            with:
              duration: "{{ params.pause }}"
    """
    _tree(tmp_path, playbook)
    ruleset = load_ruleset(tmp_path / "rules", tmp_path / "playbooks", actions=ACTIONS)
    assert list(ruleset.playbooks) == ["p"]


def test_rule_params_must_be_json_values(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        "name: p\ntarget: t\nsteps:\n  - action: log\n    with: {message: m}\n",
        rules=RULES + "    params:\n      until: 2024-01-01T00:00:00Z\n",
    )
    problems = _problems(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'rules/r.yaml'}:5: rules.0.params.until: ")


def test_maintenance_window_times_need_a_timezone(tmp_path: Path) -> None:
    config = tmp_path / "autoremedy.yaml"
    config.write_text(
        "guardrails:\n  maintenance_windows:\n    - name: upgrade\n"
        "      start: 2026-12-24T22:00:00\n      end: 2026-12-25T02:00:00+01:00\n"
    )
    with pytest.raises(FileProblems) as caught:
        load_settings(config)
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{config}:4: guardrails.maintenance_windows.0.start: Input should have timezone info")
