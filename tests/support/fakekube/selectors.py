"""Label and field selectors: parsing the query strings and matching objects, as the apiserver does."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .resources import PODS, Resource

_SET_TERM = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_TERM = re.compile(r"^(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)$")
_EXISTS_TERM = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # "!=", "notin"


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses: ``env in (a,b),tier=web`` has two terms."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t.strip() for t in terms if t.strip()]


def _parse_term(term: str) -> Requirement:
    if m := _SET_TERM.match(term):
        values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
        return Requirement(m["key"], m["op"], values)
    if m := _EQ_TERM.match(term):
        op = "!=" if m["op"] == "!=" else "="
        return Requirement(m["key"], op, frozenset({m["value"]}))
    if m := _EXISTS_TERM.match(term):
        return Requirement(m["key"], "!" if m["neg"] else "exists")
    raise bad_request(f"unable to parse requirement: found '{term}', expected: in, notin, =, ==, !=, gt, lt")


def parse_label_selector(text: str) -> list[Requirement]:
    return [_parse_term(term) for term in _split_terms(text)]


def labels_match(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


def selector_requirements(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """A ``metav1.LabelSelector`` (matchLabels + matchExpressions) as requirements."""
    selector = selector or {}
    reqs = [Requirement(k, "=", frozenset({v})) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or ())))
    return reqs


def format_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``-like text, sorted by key (``Scale.status.selector`` uses it)."""
    rendered = []
    for req in sorted(selector_requirements(selector), key=lambda r: r.key):
        values = ",".join(sorted(req.values))
        rendered.append(
            {
                "=": f"{req.key}={values}",
                "in": f"{req.key} in ({values})",
                "notin": f"{req.key} notin ({values})",
                "exists": req.key,
                "!": f"!{req.key}",
            }[req.op]
        )
    return ",".join(rendered)


# -- field selectors ---------------------------------------------------------------------------------------

_COMMON_FIELDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": lambda o: str(o.get("metadata", {}).get("name", "")),
    "metadata.namespace": lambda o: str(o.get("metadata", {}).get("namespace", "")),
}
#: The extra fields ``pod.GetAttrs`` exposes (the ones worth filtering pods by).
_POD_FIELDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "spec.nodeName": lambda o: str(o.get("spec", {}).get("nodeName", "")),
    "spec.restartPolicy": lambda o: str(o.get("spec", {}).get("restartPolicy", "")),
    "spec.serviceAccountName": lambda o: str(o.get("spec", {}).get("serviceAccountName", "")),
    "status.phase": lambda o: str(o.get("status", {}).get("phase", "")),
    "status.podIP": lambda o: str(o.get("status", {}).get("podIP", "")),
}


@dataclass(frozen=True)
class FieldRequirement:
    getter: Callable[[Mapping[str, Any]], str]
    value: str
    negate: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (self.getter(obj) == self.value) != self.negate


def parse_field_selector(text: str, res: Resource) -> list[FieldRequirement]:
    fields = {**_COMMON_FIELDS, **(_POD_FIELDS if res is PODS else {})}
    out = []
    for term in _split_terms(text):
        m = _EQ_TERM.match(term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        getter = fields.get(m["key"])
        if getter is None:
            raise bad_request(f"field label not supported: {m['key']}")
        out.append(FieldRequirement(getter, m["value"], m["op"] == "!="))
    return out
