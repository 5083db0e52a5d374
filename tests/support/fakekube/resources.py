"""The resource types the fake serves, with the per-type rules the real registry strategies apply."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Generation(Enum):
    """When ``metadata.generation`` moves (each registry strategy's ``PrepareForUpdate``)."""

    NONE = "none"  # services, HPAs: no generation at all
    SPEC = "spec"  # statefulsets, daemonsets, replicasets, pods
    SPEC_OR_ANNOTATIONS = "spec+annotations"  # deployments: annotations are copied onto ReplicaSets


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str  # "" for the core group
    version: str
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset({"status"})
    generation: Generation = Generation.SPEC
    #: Pods and Services answer DELETE with the object; the rest with a ``Status`` (``ReturnDeletedObject``).
    delete_returns_object: bool = False
    #: Services must be DNS-1035 labels; everything else here a DNS-1123 subdomain.
    dns1035_name: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` / ``pods``: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def base_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def is_workload(self) -> bool:
        return self.group == "apps"

    @property
    def scalable(self) -> bool:
        return "scale" in self.subresources


_SCALABLE = frozenset({"status", "scale"})

DEPLOYMENTS = Resource(
    "deployments",
    "Deployment",
    "apps",
    "v1",
    ("deploy",),
    _SCALABLE,
    Generation.SPEC_OR_ANNOTATIONS,
)
STATEFULSETS = Resource("statefulsets", "StatefulSet", "apps", "v1", ("sts",), _SCALABLE)
DAEMONSETS = Resource("daemonsets", "DaemonSet", "apps", "v1", ("ds",))
REPLICASETS = Resource("replicasets", "ReplicaSet", "apps", "v1", ("rs",), _SCALABLE)
PODS = Resource("pods", "Pod", "", "v1", ("po",), delete_returns_object=True)
SERVICES = Resource(
    "services",
    "Service",
    "",
    "v1",
    ("svc",),
    generation=Generation.NONE,
    delete_returns_object=True,
    dns1035_name=True,
)
HPAS = Resource(
    "horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", "v2", ("hpa",), generation=Generation.NONE
)

ALL: tuple[Resource, ...] = (DEPLOYMENTS, STATEFULSETS, DAEMONSETS, REPLICASETS, PODS, SERVICES, HPAS)


def by_path(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at ``/apis/{group}/{version}/.../{plural}`` (``group`` "" for ``/api/v1``)."""
    for res in ALL:
        if (res.group, res.version, res.plural) == (group, version, plural):
            return res
    return None


def lookup(name: str) -> Resource:
    """Find a resource by kind, plural, singular or short name, case-insensitively (for test helpers)."""
    wanted = name.lower()
    for res in ALL:
        if wanted in (res.kind.lower(), res.plural, *res.short_names):
            return res
    raise KeyError(f"the fake kube-apiserver does not serve {name!r}")
