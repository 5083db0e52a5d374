"""JSON Schema for rules and playbook files, generated from the pydantic models that load them.

Editors (yaml-language-server, through the modeline at the top of each example) use these to complete and check
files as they are written; `autoremedy validate` stays the authority, since only it knows which playbooks exist
and whether templates compile. Where the models accept more than their types say (a before-validator turns
`on: both` into a set, `3/1h` into a budget, `30s` into a timedelta), the schema is patched here to say what the
loader really accepts, and each patch checks that the part it replaces still exists so a model change cannot
silently leave the schema stale.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from autoremedy.models.durations import format_duration
from autoremedy.models.playbooks import Playbook
from autoremedy.models.rule_tests import RuleTestFile
from autoremedy.models.rules import RulesFile

DIALECT = "https://json-schema.org/draft/2020-12/schema"
RULES_SCHEMA = "rules.schema.json"
PLAYBOOK_SCHEMA = "playbook.schema.json"
RULE_TESTS_SCHEMA = "rule-tests.schema.json"

# As models.durations parses them: units in this order, each at most once (Prometheus' model.ParseDuration).
_UNITS = r"([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?"
DURATION_PATTERN = rf"^(?=[0-9]){_UNITS}$"
DURATION: JsonSchemaValue = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "description": "a Prometheus duration: 500ms, 30s, 5m, 1h30m, 1d, 1w",
}
# Every string in a step's `with` is rendered before the action's inputs are checked, so any input may be a
# template whatever its type (`replicas: "{{ params.count }}"`); the rendered text is converted then.
TEMPLATE: JsonSchemaValue = {
    "type": "string",
    "pattern": r"\{\{|\{%",
    "description": "a jinja2 template, rendered from the alert before the input is checked",
}


class _FileSchema(GenerateJsonSchema):
    """Durations as the files write them (`5m`), not pydantic's ISO 8601 (`PT5M`)."""

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> JsonSchemaValue:
        return dict(DURATION)

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, frozenset):  # a set's order is arbitrary: sort it so the output is reproducible
            return sorted(self.encode_default(item) for item in dft)
        return super().encode_default(dft)


def rules_schema() -> JsonSchemaValue:
    """The schema of one rules file (`rules/*.yaml`)."""
    schema = RulesFile.model_json_schema(schema_generator=_FileSchema)
    rule = _def(schema, "Rule")
    _replace(rule["properties"], "on", _on_schema(rule["properties"]["on"]))
    _replace(schema["$defs"], "Budget", _budget_schema(schema["$defs"]["Budget"]))
    return _document(schema, "autoremedy rules file", "Rules that pick a playbook for matching alerts.")


def rule_tests_schema() -> JsonSchemaValue:
    """The schema of one rule test file (`rule-tests/*.yaml`, run by `autoremedy test`)."""
    schema = RuleTestFile.model_json_schema(schema_generator=_FileSchema)
    return _document(schema, "autoremedy rule tests", "Timelines of alerts and what the rules must do with each.")


def playbook_schema(actions: Mapping[str, type[BaseModel]]) -> JsonSchemaValue:
    """The schema of one playbook file (`playbooks/*.yaml`), with each action's inputs checked under `with`."""
    names = sorted(actions)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Playbook, "validation")]
    models += [(actions[name], "validation") for name in names]
    refs, definitions = models_json_schema(models, schema_generator=_FileSchema)
    schema = copy.deepcopy(definitions["$defs"].pop("Playbook"))
    defs: dict[str, Any] = definitions["$defs"]
    defs["Template"] = dict(TEMPLATE)
    for name in names:
        inputs_ref = refs[(actions[name], "validation")]["$ref"]
        _templated_inputs(defs[inputs_ref.rsplit("/", 1)[1]])
    step = defs["Step"]
    _replace(step["properties"], "action", {**step["properties"]["action"], "enum": names})
    step["allOf"] = [
        {
            "if": {"properties": {"action": {"const": name}}, "required": ["action"]},
            "then": {"properties": {"with": refs[(actions[name], "validation")]}},
        }
        for name in names
    ]
    schema["$defs"] = defs
    return _document(schema, "autoremedy playbook", "One playbook: a target and the steps that remediate it.")


def _document(schema: JsonSchemaValue, title: str, description: str) -> JsonSchemaValue:
    schema = {"$schema": DIALECT, **schema}
    schema["title"] = title
    schema["description"] = description
    return schema


def _def(schema: JsonSchemaValue, name: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["$defs"][name]
    return found


def _replace(parent: dict[str, Any], key: str, value: JsonSchemaValue) -> None:
    if key not in parent:
        raise KeyError(f"schema patch: {key!r} is no longer generated; update autoremedy.config.schema")
    parent[key] = value


def _on_schema(generated: JsonSchemaValue) -> JsonSchemaValue:
    # models.rules: `on` is one state, `both`, or a non-empty list of states.
    states = generated["items"]["enum"]
    return {
        "description": "which alert states the rule acts on: firing (default), resolved, both, or a list",
        "default": "firing",
        "anyOf": [
            {"type": "string", "enum": [*states, "both"]},
            {"type": "array", "items": {"type": "string", "enum": states}, "minItems": 1, "uniqueItems": True},
        ],
    }


def _budget_schema(generated: JsonSchemaValue) -> JsonSchemaValue:
    # models.guardrails.Budget also reads the short form COUNT/DURATION.
    short = {
        "type": "string",
        "pattern": rf"^\s*[0-9]+\s*/\s*(?=[0-9]){_UNITS}\s*$",
        "description": "COUNT/DURATION, e.g. 3/1h",
    }
    long = {key: value for key, value in generated.items() if key != "description"}
    return {"description": generated.get("description", ""), "anyOf": [short, long]}


def _templated_inputs(inputs: dict[str, Any]) -> None:
    """Let every input that is more than a plain string also be a template."""
    for name, prop in list(inputs.get("properties", {}).items()):
        outer = {key: prop.pop(key) for key in ("title", "description", "default") if key in prop}
        options = prop["anyOf"] if set(prop) == {"anyOf"} else [prop]
        if not any(_plain_string(option) for option in options):  # a plain string already admits a template
            options = [*options, {"$ref": "#/$defs/Template"}]
        inputs["properties"][name] = {**outer, **(options[0] if len(options) == 1 else {"anyOf": options})}


def _plain_string(prop: JsonSchemaValue) -> bool:
    return prop.get("type") == "string" and not set(prop) - {"type", "title", "description", "default"}


def describe_type(prop: JsonSchemaValue, defs: Mapping[str, Any] | None = None) -> str:
    """A short type for people, from a property's schema: `integer or string`, `` `Deployment` | `StatefulSet` ``."""
    # Templates and null (an absent optional input, which its default says) go without saying.
    options = [
        option
        for option in prop.get("anyOf", [prop])
        if option != {"$ref": "#/$defs/Template"} and option.get("type") != "null"
    ]
    return " or ".join(dict.fromkeys(_one_type(option, defs or {}) for option in options))


def _one_type(prop: JsonSchemaValue, defs: Mapping[str, Any]) -> str:
    if "$ref" in prop:
        return _one_type(defs.get(prop["$ref"].rsplit("/", 1)[1], {}), defs)
    if "enum" in prop:
        return " | ".join(f"`{value}`" for value in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_one_type(prop.get('items', {}), defs)}"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"map of {_one_type(values, defs)}" if isinstance(values, dict) else "map"
    if prop.get("pattern") == DURATION_PATTERN:
        kind = "duration"
    elif prop.get("format") == "uri":
        kind = "URL"
    return str(kind) if kind else "any"
