"""Pure decisions behind the Kubernetes actions: names, namespace policy, replica counts, HPA adjustment, rollout
completeness and rollback revisions. Objects are the API's JSON as dicts; nothing here talks to a cluster."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def name_problem(value: str, *, what: str, label: bool = False) -> str | None:
    """Why a rendered name is not a valid Kubernetes name, or None. Checked before any call is made."""
    limit, pattern = (63, _DNS1123_LABEL) if label else (253, _DNS1123_SUBDOMAIN)
    kind = "DNS-1123 label" if label else "DNS-1123 subdomain"
    if not value:
        return f"{what} is empty"
    if len(value) > limit:
        return f"{what} {value!r} is longer than {limit} characters"
    if not pattern.fullmatch(value):  # not `match`: its `$` also matches before a final newline
        return f"{what} {value!r} is not a valid {kind} (lower-case letters, digits, '-'{'' if label else ', .'})"
    return None


def namespace_problem(namespace: str, *, allow: Sequence[str], deny: Sequence[str]) -> str | None:
    """Deny wins over allow; an empty allow list allows every namespace not denied. Both are glob patterns."""
    problem = name_problem(namespace, what="namespace", label=True)
    if problem:
        return problem
    if any(fnmatchcase(namespace, pattern) for pattern in deny):
        return f"namespace {namespace!r} is denied by kubernetes.namespaces.deny"
    if allow and not any(fnmatchcase(namespace, pattern) for pattern in allow):
        return f"namespace {namespace!r} is not in kubernetes.namespaces.allow"
    return None


@dataclass(frozen=True, slots=True)
class ReplicaChange:
    current: int
    desired: int
    clamped: bool
    """True when min/max changed what the playbook asked for."""


def parse_replicas(text: str | int) -> tuple[str, int]:
    """`5` -> ("set", 5); `"+2"` -> ("add", 2); `"-1"` -> ("add", -1). Raises ValueError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return "set", text
    value = str(text).strip()
    if re.fullmatch(r"[+-]\d+", value):
        return "add", int(value)
    if re.fullmatch(r"\d+", value):
        return "set", int(value)
    raise ValueError(f"replicas {text!r} must be a count (5) or a change (+2, -1)")


def desired_replicas(current: int, replicas: str | int, *, minimum: int, maximum: int) -> ReplicaChange:
    mode, number = parse_replicas(replicas)
    wanted = number if mode == "set" else current + number
    desired = max(minimum, min(maximum, wanted))
    return ReplicaChange(current=current, desired=desired, clamped=desired != wanted)


def hpa_for(hpas: Sequence[Mapping[str, Any]], *, kind: str, name: str) -> Mapping[str, Any] | None:
    """The HorizontalPodAutoscaler whose scaleTargetRef points at kind/name, if any."""
    for hpa in hpas:
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("kind") == kind and ref.get("name") == name:
            return hpa
    return None


def hpa_bounds(hpa: Mapping[str, Any], desired: int) -> dict[str, int]:
    """New minReplicas/maxReplicas so the HPA keeps at least `desired` replicas instead of undoing our change."""
    spec = hpa.get("spec", {})
    minimum = max(1, desired)
    maximum = max(int(spec.get("maxReplicas", minimum)), minimum)
    return {"minReplicas": minimum, "maxReplicas": maximum}


def rollout_status(kind: str, obj: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a rollout is complete, as `kubectl rollout status` judges it, and a sentence saying where it is."""
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {}) or {}
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return False, "waiting for the controller to observe the new generation"
    if kind == "DaemonSet":
        return _daemonset_status(status)
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    if updated < wanted:
        return False, f"{updated} of {wanted} replicas updated"
    if kind == "StatefulSet":
        return _statefulset_status(status, wanted)
    return _deployment_status(status, wanted, updated)


def _statefulset_status(status: Mapping[str, Any], wanted: int) -> tuple[bool, str]:
    ready = int(status.get("readyReplicas", 0))
    if ready < wanted:
        return False, f"{ready} of {wanted} replicas ready"
    return True, f"{wanted} replicas updated and ready"


def _deployment_status(status: Mapping[str, Any], wanted: int, updated: int) -> tuple[bool, str]:
    total, available = int(status.get("replicas", 0)), int(status.get("availableReplicas", 0))
    if total > updated:
        return False, f"{total - updated} old replicas pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, f"{wanted} replicas updated and available"


def _daemonset_status(status: Mapping[str, Any]) -> tuple[bool, str]:
    desired = int(status.get("desiredNumberScheduled", 0))
    updated = int(status.get("updatedNumberScheduled", 0))
    available = int(status.get("numberAvailable", 0))
    if updated < desired:
        return False, f"{updated} of {desired} pods updated"
    if available < desired:
        return False, f"{available} of {desired} updated pods available"
    return True, f"{desired} pods updated and available"


def revision(obj: Mapping[str, Any]) -> int:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations.get(REVISION_ANNOTATION, 0))
    except ValueError:
        return 0


def rollback_source(
    deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]], *, to_revision: int | None
) -> tuple[Mapping[str, Any] | None, str]:
    """The ReplicaSet whose template `kubectl rollout undo` would restore, or None and the reason."""
    uid = deployment.get("metadata", {}).get("uid")
    owned = [rs for rs in replicasets if _owned_by(rs, uid)]
    current = revision(deployment)
    if to_revision is not None:
        match = next((rs for rs in owned if revision(rs) == to_revision), None)
        if match is None:
            known = ", ".join(str(r) for r in sorted(revision(rs) for rs in owned)) or "none"
            return None, f"revision {to_revision} not found (known revisions: {known})"
        return match, f"revision {to_revision}"
    earlier = sorted((rs for rs in owned if 0 < revision(rs) < current), key=revision)
    if not earlier:
        return None, f"no revision earlier than the current {current} to roll back to"
    return earlier[-1], f"revision {revision(earlier[-1])}"


def _owned_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def template_for_rollback(replicaset: Mapping[str, Any]) -> dict[str, Any]:
    """The ReplicaSet's pod template without the pod-template-hash label the controller added (as kubectl does)."""
    template: dict[str, Any] = _deep_copy(replicaset.get("spec", {}).get("template", {}))
    labels = template.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop("pod-template-hash", None)
    return template


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def controller_of(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = pod.get("metadata", {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)
