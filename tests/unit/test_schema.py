"""JSON Schema for editors and the action reference: the committed files are what `autoremedy schema` writes, every
example validates and carries the modeline, broken files are rejected, and the schema agrees with the loader."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from autoremedy.actions.after_crash import after_crash
from autoremedy.actions.reference import actions_markdown
from autoremedy.actions.registry import default_registry
from autoremedy.cli import main
from autoremedy.config.schema import (
    PLAYBOOK_SCHEMA,
    RULE_TESTS_SCHEMA,
    RULES_SCHEMA,
    playbook_schema,
    rule_tests_schema,
    rules_schema,
)
from autoremedy.config.yamlfile import load_yaml_file, load_yaml_text
from autoremedy.models.playbooks import Playbook
from autoremedy.models.rules import RulesFile

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
EXAMPLES = {
    "rules": (sorted((ROOT / "rules").glob("*.yaml")), RULES_SCHEMA),
    "playbooks": (sorted((ROOT / "playbooks").glob("*.yaml")), PLAYBOOK_SCHEMA),
    "rule-tests": (sorted((ROOT / "rule-tests").glob("*.yaml")), RULE_TESTS_SCHEMA),
}
REGENERATE = "run: .venv/bin/autoremedy schema --actions-doc docs/actions.md"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(name: str, document: Any) -> list[str]:
    return [error.message for error in validator(name).iter_errors(document)]


def test_committed_schemas_and_reference_are_up_to_date() -> None:
    registry = default_registry()
    assert json.loads((SCHEMAS / RULES_SCHEMA).read_text()) == rules_schema(), REGENERATE
    assert json.loads((SCHEMAS / PLAYBOOK_SCHEMA).read_text()) == playbook_schema(registry.input_models()), REGENERATE
    assert json.loads((SCHEMAS / RULE_TESTS_SCHEMA).read_text()) == rule_tests_schema(), REGENERATE
    assert (ROOT / "docs" / "actions.md").read_text() == actions_markdown(registry), REGENERATE


def test_the_command_writes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--output", str(tmp_path / "out"), "--actions-doc", str(tmp_path / "actions.md")]) == 0
    for name in (RULES_SCHEMA, PLAYBOOK_SCHEMA, RULE_TESTS_SCHEMA):
        assert (tmp_path / "out" / name).read_text() == (SCHEMAS / name).read_text()
    assert (tmp_path / "actions.md").read_text() == (ROOT / "docs" / "actions.md").read_text()
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "path"),
    [(kind, path) for kind, (paths, _) in EXAMPLES.items() for path in paths],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_every_example_validates_and_names_its_schema(kind: str, path: Path) -> None:
    name = EXAMPLES[kind][1]
    assert path.read_text().splitlines()[0] == f"# yaml-language-server: $schema=../schemas/{name}"
    assert (path.parent / "../schemas" / name).is_file()
    # Loaded as editors load it (YAML 1.2: `on` stays a key), which is also how autoremedy loads it.
    assert errors(name, load_yaml_file(path).data) == []


RULE = {"name": "r", "matchers": ["alertname=X"], "playbook": "p"}
STEP = {"action": "kubernetes.scale", "with": {"namespace": "shop", "name": "web", "replicas": "+2"}}
PLAYBOOK = {"name": "p", "target": "t/{{ alert.labels.app }}", "steps": [STEP]}


def rule(**changes: Any) -> dict[str, Any]:
    return {"rules": [{**RULE, **changes}]}


def playbook(step: dict[str, Any] | None = None, **inputs: Any) -> dict[str, Any]:
    changed = copy.deepcopy(step or STEP)
    changed["with"].update(inputs)
    return {**PLAYBOOK, "steps": [changed]}


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(rule(), id="minimal"),
        pytest.param(rule(on="both"), id="on-both"),
        pytest.param(rule(on=["firing", "resolved"]), id="on-list"),
        pytest.param(rule(budgets=["3/1h", {"max": 7, "per": "1d"}]), id="budgets-both-forms"),
        pytest.param(rule(cooldown="1h30m", delay="500ms", approval="required", escalate=[]), id="guardrails"),
        pytest.param(rule(params={"n": "{{ alert.labels.n }}", "k": 3}), id="params"),
    ],
)
def test_valid_rules_pass_schema_and_loader(document: dict[str, Any]) -> None:
    assert errors(RULES_SCHEMA, document) == []
    RulesFile.model_validate(document)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(rule(matcher=["a=b"]), "'matcher' was unexpected", id="unknown-key"),
        pytest.param({"rules": [{"matchers": []}]}, "'name' is a required property", id="missing-name"),
        pytest.param(rule(name="bad name"), "does not match", id="bad-name"),
        pytest.param(rule(on="sometimes"), "is not valid", id="bad-on"),
        pytest.param(rule(on=[]), "is not valid", id="empty-on"),
        pytest.param(rule(cooldown="10 minutes"), "is not valid", id="bad-duration"),
        pytest.param(rule(cooldown="5m1h"), "is not valid", id="units-out-of-order"),
        pytest.param(rule(budgets=["3 per hour"]), "is not valid", id="bad-budget"),
        pytest.param(rule(escalate=["email"]), "is not valid", id="unknown-channel"),
        pytest.param(rule(approval="maybe"), "is not one of", id="bad-approval"),
    ],
)
def test_broken_rules_are_rejected_by_schema_and_loader(document: dict[str, Any], message: str) -> None:
    found = errors(RULES_SCHEMA, document)
    assert any(message in error for error in found), found
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        RulesFile.model_validate(document)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(PLAYBOOK, id="minimal"),
        pytest.param(playbook(replicas=5, min="{{ params.min }}"), id="typed-and-templated"),
        pytest.param(
            playbook({"action": "wait", "timeout": "2m", "retries": 2, "with": {}}, duration="{{ params.d }}"),
            id="templated-duration",
        ),
        pytest.param(
            playbook({"action": "http.request", "on_failure": "continue", "with": {"url": "https://x.example/h"}}),
            id="http",
        ),
    ],
)
def test_valid_playbooks_pass_schema_and_loader(document: dict[str, Any]) -> None:
    assert errors(PLAYBOOK_SCHEMA, document) == []
    Playbook.model_validate(document)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(playbook(mni=2), "'mni' was unexpected", id="unknown-input"),
        pytest.param(
            playbook({"action": "kubernetes.scale", "with": {"namespace": "a", "name": "b"}}),
            "'replicas' is a required property",
            id="missing-input",
        ),
        pytest.param(playbook(kind="Pod"), "is not valid", id="bad-enum-input"),
        pytest.param(playbook(min="two"), "is not valid", id="untemplated-string-for-integer"),
        pytest.param(playbook({"action": "kubernetes.explode", "with": {}}), "is not one of", id="unknown-action"),
        pytest.param({**PLAYBOOK, "steps": [{**STEP, "timeout": "soon"}]}, "does not match", id="bad-timeout"),
        pytest.param({**PLAYBOOK, "steps": []}, "should be non-empty", id="no-steps"),
        pytest.param({k: v for k, v in PLAYBOOK.items() if k != "target"}, "'target' is a required", id="no-target"),
    ],
)
def test_broken_playbooks_are_rejected(document: dict[str, Any], message: str) -> None:
    found = errors(PLAYBOOK_SCHEMA, document)
    assert any(message in error for error in found), found


def test_a_broken_example_file_is_rejected() -> None:
    text = (ROOT / "playbooks" / "scale-out.yaml").read_text().replace("replicas:", "replicaz:", 1)
    found = errors(PLAYBOOK_SCHEMA, load_yaml_text(text, file="scale-out.yaml").data)
    assert any("'replicaz' was unexpected" in error for error in found), found
    assert any("'replicas' is a required property" in error for error in found), found


def test_every_action_says_what_a_crash_during_it_can_cause() -> None:
    registry = default_registry()
    assert [name for name, spec in registry.items() if not after_crash(spec)] == []
