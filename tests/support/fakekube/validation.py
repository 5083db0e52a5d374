"""Validation on write: the official OpenAPI schemas (kubernetes-validate) plus the server-side checks.

The schemas are checked with the *strict* variant (``additionalProperties: false``) so that unknown fields can be
told apart from wrong ones, the way the apiserver's decoder does:

* unknown fields are dropped with a ``Warning`` header (``fieldValidation=Warn``, the default), dropped silently
  (``Ignore``) or refused (``Strict``);
* a value of the wrong JSON type is a decoding error (400 on POST/PUT, 422 "patch" on PATCH);
* anything else the schema rejects, and the checks in ``pkg/apis/*/validation`` that a schema cannot express
  (DNS names, replicas >= 0, selector matches template labels, ...), is a 422 ``Invalid`` with field causes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from kubernetes_validate import utils as kv  # type: ignore[import-untyped]
from referencing import Registry
from referencing import Resource as SchemaResource

from .errors import Cause, duplicate, invalid_value, not_supported, required
from .resources import DAEMONSETS, HPAS, PODS, SERVICES, Resource
from .selectors import labels_match, selector_requirements

JSON = dict[str, Any]

#: The Kubernetes release whose schemas are used: the one kubernetes-asyncio 36.x is generated from.
KUBERNETES_VERSION = "1.36"

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def field_path(parts: Any) -> str:
    """``['spec', 'containers', 0, 'image']`` -> ``spec.containers[0].image`` (the apiserver's notation)."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- schema ------------------------------------------------------------------------------------------------


@dataclass
class TypeIssue:
    path: str
    expected: str
    got: str


@dataclass
class SchemaReport:
    unknown: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)  # (parent path, key)
    type_issues: list[TypeIssue] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)

    @property
    def unknown_paths(self) -> list[str]:
        return [field_path([*parent, key]) for parent, key in self.unknown]


@cache
def _validator(kind: str, api_version: str, version: str) -> jsonschema.protocols.Validator:
    # kubernetes_validate.validate() reloads 1.8 MB of definitions per call and stops at the first error;
    # the same files, loaded once, give every error in well under a millisecond.
    schema_dir = f"kubernetes-json-schema/v{version}.0-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", version)
    definitions = kv.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry: Registry[Any] = SchemaResource.from_contents(definitions) @ (
        SchemaResource.from_contents(schema) @ Registry()
    )
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return validator


def check_schema(obj: JSON, kind: str, api_version: str, version: str = KUBERNETES_VERSION) -> SchemaReport:
    report = SchemaReport()
    for error in _validator(kind, api_version, version).iter_errors(obj):
        _classify(error, report)
    return report


def _classify(error: jsonschema.ValidationError, report: SchemaReport) -> None:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        report.unknown += [(tuple(path), key) for key in error.instance if key not in known]
    elif error.validator == "type":
        report.type_issues.append(TypeIssue(field_path(path), _type_name(error.validator_value), _json_type(error)))
    elif error.validator == "required":
        missing = [k for k in error.validator_value if k not in (error.instance or {})]
        report.causes += [required(field_path([*path, key])) for key in missing]
    elif error.validator == "enum":
        supported = [str(v) for v in error.validator_value if v is not None]
        report.causes.append(not_supported(field_path(path), error.instance, supported))
    else:
        report.causes.append(invalid_value(field_path(path), error.instance, error.message))


def _type_name(value: Any) -> str:
    names = [value] if isinstance(value, str) else [v for v in value if v != "null"]
    return "|".join({"integer": "int32", "object": "map", "array": "slice"}.get(n, n) for n in names)


def _json_type(error: jsonschema.ValidationError) -> str:
    value = error.instance
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def drop_unknown(obj: JSON, report: SchemaReport) -> None:
    """Remove the unknown fields from ``obj``, as the decoder does (deepest first, so paths stay valid)."""
    for parent_path, key in sorted(report.unknown, key=lambda u: len(u[0]), reverse=True):
        parent: Any = obj
        for part in parent_path:
            parent = parent[part]
        parent.pop(key, None)


# -- server-side checks ------------------------------------------------------------------------------------


def semantic_causes(res: Resource, obj: JSON, old: JSON | None) -> list[Cause]:
    """The checks ``pkg/apis/<group>/validation`` makes that the schema cannot express."""
    causes = list(_metadata_causes(res, obj.get("metadata") or {}))
    found = obj.get("spec")
    spec: JSON = found if isinstance(found, dict) else {}
    if res.is_workload:
        causes += _workload_causes(res, spec)
        if old is not None and spec.get("selector") != (old.get("spec") or {}).get("selector"):
            causes.append(invalid_value("spec.selector", spec.get("selector"), "field is immutable"))
    elif res is PODS:
        causes += _pod_spec_causes(spec, "spec")
    elif res is SERVICES:
        causes += _service_causes(spec)
    elif res is HPAS:
        causes += _hpa_causes(spec)
    return causes


def _metadata_causes(res: Resource, meta: JSON) -> Iterator[Cause]:
    name = meta.get("name")
    if not name:
        yield required("metadata.name", "name or generateName is required")
    elif res.dns1035_name and not DNS1035_LABEL.match(name):
        yield invalid_value("metadata.name", name, DNS1035_MSG)
    elif not res.dns1035_name and (len(name) > 253 or not DNS1123_SUBDOMAIN.match(name)):
        yield invalid_value("metadata.name", name, SUBDOMAIN_MSG)


def _workload_causes(res: Resource, spec: JSON) -> Iterator[Cause]:
    replicas = spec.get("replicas")
    if res is not DAEMONSETS and isinstance(replicas, int) and replicas < 0:
        yield invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")
    selector = spec.get("selector")
    if not selector_requirements(selector):
        detail = f"empty selector is invalid for {res.kind.lower()}"
        yield (required("spec.selector") if selector is None else invalid_value("spec.selector", selector, detail))
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and not labels_match(selector_requirements(selector), template):
        yield invalid_value("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    yield from _pod_spec_causes(template.get("spec") or {}, "spec.template.spec")


def _pod_spec_causes(pod_spec: JSON, path: str) -> Iterator[Cause]:
    containers = pod_spec.get("containers") or []
    if not containers:
        yield required(f"{path}.containers")
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{path}.containers[{i}]"
        name = container.get("name") or ""
        if not name:
            yield required(f"{where}.name")
        elif not DNS1123_LABEL.match(name):
            yield invalid_value(f"{where}.name", name, LABEL_MSG)
        elif name in seen:
            yield duplicate(f"{where}.name", name)
        seen.add(name)
        if not container.get("image"):
            yield required(f"{where}.image")


def _service_causes(spec: JSON) -> Iterator[Cause]:
    # spec.selector is a map of strings: the schema refuses other value types (a 400 decoding error) and
    # defaulting turns a null value into "" as Go's decoder does; what remains is to check the keys and values.
    for key, value in (spec.get("selector") or {}).items():
        if len(value) > 63:
            yield invalid_value(f"spec.selector[{key}]", value, "must be no more than 63 characters")
        elif not LABEL_VALUE.match(value):
            yield invalid_value(f"spec.selector[{key}]", value, LABEL_VALUE_MSG)
    headless = spec.get("clusterIP") == "None"
    if not spec.get("ports") and not headless and spec.get("type") != "ExternalName":
        yield required("spec.ports")
    for i, port in enumerate(spec.get("ports") or []):
        number = port.get("port")
        if isinstance(number, int) and not 1 <= number <= 65535:
            yield invalid_value(f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive")


def _hpa_causes(spec: JSON) -> Iterator[Cause]:
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
    if isinstance(low, int) and low < 1:
        yield invalid_value("spec.minReplicas", low, "must be greater than or equal to 1")
    if isinstance(high, int) and high < 1:
        yield invalid_value("spec.maxReplicas", high, "must be greater than 0")
    elif isinstance(high, int) and isinstance(low, int) and high < low:
        yield invalid_value("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`")


def scale_causes(replicas: Any) -> list[Cause]:
    if isinstance(replicas, int) and replicas < 0:
        return [invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")]
    return []


__all__ = [
    "KUBERNETES_VERSION",
    "SchemaReport",
    "TypeIssue",
    "check_schema",
    "drop_unknown",
    "field_path",
    "scale_causes",
    "semantic_causes",
]
