"""Manifests for tests: small, valid objects to seed the fake API server with."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
NS = "prod"


def deployment(name: str = "web", *, image: str = "nginx:1.25", replicas: int = 3, namespace: str = NS) -> JSON:
    labels = {"app": name}
    container = {"name": name, "image": image, "env": [{"name": "MODE", "value": "prod"}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {**labels, "tier": "frontend"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def pod(name: str, *, app: str = "web", owner: JSON | None = None, grace: int | None = None) -> JSON:
    metadata: JSON = {"name": name, "namespace": NS, "labels": {"app": app}}
    if owner is not None:
        ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner["metadata"]["name"], "controller": True}
        metadata["ownerReferences"] = [{**ref, "uid": owner["metadata"]["uid"]}]
    spec: JSON = {"containers": [{"name": app, "image": "nginx:1.25"}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {"phase": "Running"}}
