"""The manifests in deploy/ are valid Kubernetes objects, and the RBAC grants exactly what the actions need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.36"

# What each Kubernetes action calls, as (API group, resource, verb); keep in step with actions/kubernetes.
NEEDED = {
    ("apps", "deployments", "get"),
    ("apps", "deployments", "patch"),
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "patch"),
    ("apps", "daemonsets", "get"),
    ("apps", "daemonsets", "patch"),
    ("apps", "replicasets", "list"),
    ("", "pods", "get"),
    ("", "pods", "delete"),
    ("", "services", "get"),
    ("", "services", "patch"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("autoscaling", "horizontalpodautoscalers", "patch"),
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_validate_against_the_kubernetes_schema(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_rbac_grants_exactly_what_the_actions_use() -> None:
    (role,) = [d for d in documents(DEPLOY / "rbac.yaml") if d["kind"] == "ClusterRole"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == NEEDED
    assert not any("*" in str(value) for rule in role["rules"] for value in rule.values())
