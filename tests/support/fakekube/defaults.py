"""Server-side defaulting (``SetDefaults_*`` in k8s.io/kubernetes) and each kind's zero status.

Defaults matter to clients: a real Deployment read back always has ``spec.replicas``, a strategy, container
``imagePullPolicy`` and so on, and a template compared before and after a write must not differ only because one
side was defaulted. Zero statuses matter to kubernetes-asyncio: its models refuse a ``None`` for fields the Go
types serialise without ``omitempty`` (``ReplicaSetStatus.replicas``, ``DaemonSetStatus.numberReady``, ...).
"""

from __future__ import annotations

import copy
from typing import Any

from .resources import DAEMONSETS, DEPLOYMENTS, HPAS, PODS, REPLICASETS, SERVICES, STATEFULSETS, Resource

JSON = dict[str, Any]

_ZERO_STATUS: dict[str, JSON] = {
    DEPLOYMENTS.plural: {},
    REPLICASETS.plural: {"replicas": 0},
    STATEFULSETS.plural: {"replicas": 0, "availableReplicas": 0},
    DAEMONSETS.plural: {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
    PODS.plural: {"phase": "Pending"},
    SERVICES.plural: {"loadBalancer": {}},
    HPAS.plural: {"desiredReplicas": 0},
}


def zero_status(res: Resource, obj: JSON | None = None) -> JSON:
    """The status an object is created with (its strategy's PrepareForCreate); pods also get their QoS class."""
    status = copy.deepcopy(_ZERO_STATUS[res.plural])
    if res is PODS and obj is not None:
        status["qosClass"] = pod_qos(obj.get("spec") or {})
    return status


def pod_qos(spec: JSON) -> str:
    """``qos.GetPodQOS``, simplified to cpu and memory: no requests/limits at all is BestEffort; limits equal
    to requests for both, in every container, is Guaranteed; anything in between Burstable."""
    resources = [c.get("resources") or {} for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) is not None
        and (r.get("requests") or {}).get(k, (r.get("limits") or {}).get(k)) == (r.get("limits") or {}).get(k)
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _nulls_to_empty(mapping: Any) -> None:
    # Go decodes a JSON null map value into a map[string]string as "": the key stays, with an empty value.
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            if value is None:
                mapping[key] = ""


def apply_defaults(res: Resource, obj: JSON) -> None:
    """Fill in what the apiserver defaults, in place; values already set are kept."""
    metadata = obj.get("metadata") or {}
    _nulls_to_empty(metadata.get("labels"))
    _nulls_to_empty(metadata.get("annotations"))
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if res.is_workload:
        _workload_defaults(res, spec)
        template_spec = (spec.get("template") or {}).get("spec")
        if isinstance(template_spec, dict):
            _pod_spec_defaults(template_spec)
    elif res is PODS:
        _pod_spec_defaults(spec)
    elif res is SERVICES:
        _service_defaults(spec)
    elif res is HPAS:
        _hpa_defaults(spec)


def _workload_defaults(res: Resource, spec: JSON) -> None:
    if res is not DAEMONSETS:
        spec.setdefault("replicas", 1)
    if res is DEPLOYMENTS:
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    elif res is STATEFULSETS:
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    elif res is DAEMONSETS:
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)


def _pod_spec_defaults(spec: JSON) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _container_defaults(container)


def _container_defaults(container: JSON) -> None:
    image = str(container.get("image") or "")
    tag = image.rsplit("/", 1)[-1]
    untagged_or_latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if untagged_or_latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _service_defaults(spec: JSON) -> None:
    _nulls_to_empty(spec.get("selector"))
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def _hpa_defaults(spec: JSON) -> None:
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        target = {"type": "Utilization", "averageUtilization": 80}
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]
    behavior = spec.setdefault("behavior", {})
    up = behavior.setdefault("scaleUp", {})
    up.setdefault("stabilizationWindowSeconds", 0)
    up.setdefault("selectPolicy", "Max")
    up.setdefault(
        "policies",
        [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}],
    )
    down = behavior.setdefault("scaleDown", {})
    down.setdefault("stabilizationWindowSeconds", 300)
    down.setdefault("selectPolicy", "Max")
    down.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])
