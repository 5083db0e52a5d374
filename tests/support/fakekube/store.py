"""The in-memory object store: etcd's part of the apiserver (revisions, system fields, garbage collection)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from .resources import ALL, Generation, Resource

JSON = dict[str, Any]


def now_rfc3339() -> str:
    """A ``metav1.Time`` as serialised: UTC, second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: JSON) -> JSON:
    metadata: JSON = obj.setdefault("metadata", {})
    return metadata


def stamp_new(obj: JSON, res: Resource) -> None:
    """The fields ``rest.BeforeCreate`` fills in (uid, creationTimestamp) plus generation 1 where tracked."""
    m = meta(obj)
    m["uid"] = str(uuid.uuid4())
    m["creationTimestamp"] = now_rfc3339()
    if res.generation is not Generation.NONE:
        m["generation"] = 1
    else:
        m.pop("generation", None)


class ObjectStore:
    """Objects by (resource, namespace, name); every write takes the next revision of one global counter.

    Reads and writes copy, so nothing a caller holds can change what is stored behind the store's back.
    """

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._revision = 0
        self._cluster_ips = 0

    @property
    def revision(self) -> str:
        """The latest revision, as list responses report it in ``metadata.resourceVersion``."""
        return str(self._revision)

    def get(self, res: Resource, namespace: str, name: str) -> JSON | None:
        obj = self._objects.get((res.plural, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def items(self, res: Resource, namespace: str | None = None) -> list[JSON]:
        """Objects of ``res`` (in ``namespace``, or all namespaces), sorted by namespace then name as etcd does."""
        keys = sorted(k for k in self._objects if k[0] == res.plural and namespace in (None, k[1]))
        return [copy.deepcopy(self._objects[k]) for k in keys]

    def write(self, res: Resource, obj: JSON) -> JSON:
        """Store ``obj`` under a new resourceVersion and return what was stored."""
        self._revision += 1
        stored = copy.deepcopy(obj)
        stored["kind"], stored["apiVersion"] = res.kind, res.api_version
        meta(stored)["resourceVersion"] = str(self._revision)
        self._objects[(res.plural, stored["metadata"]["namespace"], stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def remove(self, res: Resource, namespace: str, name: str) -> JSON | None:
        obj = self._objects.pop((res.plural, namespace, name), None)
        if obj is not None:
            self._revision += 1  # a delete is a write in etcd too
        return obj

    def next_cluster_ip(self) -> str:
        self._cluster_ips += 1
        return f"10.96.{self._cluster_ips // 250}.{self._cluster_ips % 250 + 1}"

    def collect_garbage(self, owner_uid: str, policy: str) -> None:
        """What the garbage collector does once an owner is gone: ``Orphan`` drops the owner reference; otherwise
        dependents left without owners are deleted too, recursively. Done at once rather than eventually, which
        a test cannot tell apart except by timing."""
        for res in ALL:
            for obj in self.items(res):
                refs = meta(obj).get("ownerReferences") or []
                if not any(ref.get("uid") == owner_uid for ref in refs):
                    continue
                remaining = [ref for ref in refs if ref.get("uid") != owner_uid]
                if remaining or policy == "Orphan":
                    meta(obj)["ownerReferences"] = remaining
                    if not remaining:
                        del meta(obj)["ownerReferences"]
                    self.write(res, obj)
                else:
                    self.remove(res, obj["metadata"]["namespace"], obj["metadata"]["name"])
                    self.collect_garbage(obj["metadata"]["uid"], policy)
