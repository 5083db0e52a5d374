"""A small kube-controller-manager: the deployment controller, workload status, and a kubelet that lets go.

* Deployments (``pkg/controller/deployment``): on a template change, reuse an owned ReplicaSet whose template
  equals the new one (that is how ``kubectl rollout undo`` works: the old ReplicaSet comes back with the next
  revision number) or create ``<deployment>-<hash>``; mirror the revision annotation onto the Deployment; scale
  the new ReplicaSet to ``spec.replicas`` and the old ones to 0; prune history beyond revisionHistoryLimit.
* Status: the rollout completes at once (every replica updated, ready, available) unless the workload is
  *stalled*; then the controller still observes the new generation and the new ReplicaSet, but no new pod ever
  becomes available, the old ReplicaSets keep their replicas and, after ``progressDeadlineSeconds``, the
  Progressing condition turns False with ``ProgressDeadlineExceeded`` - what a real stuck rollout looks like.
* Pods marked for graceful deletion are removed on the next tick (the kubelet confirming at once).

Writes to the ReplicaSets and to the Deployment's revision annotation happen inline after each write
(``on_change``); status moves on the periodic ``tick`` - so, as on a real cluster, a write's response never
includes the controller's reaction and the status lags behind the spec for a moment.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

from .resources import DAEMONSETS, DEPLOYMENTS, PODS, REPLICASETS, STATEFULSETS, Resource
from .store import ObjectStore, meta, now_rfc3339, stamp_new

JSON = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
HASH_LABEL = "pod-template-hash"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # rand.SafeEncodeString's: no vowels, no look-alikes


def template_hash(template: JSON) -> str:
    """A stable 10-character hash of a pod template (the ``pod-template-hash`` label value)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


def revision(obj: JSON) -> int:
    value = (obj.get("metadata", {}).get("annotations") or {}).get(REVISION, "0")
    return int(value) if str(value).isdigit() else 0


def _without_hash(template: JSON) -> JSON:
    template = copy.deepcopy(template)
    labels = template.get("metadata", {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return template


def _drop_zeros(status: JSON, keep: tuple[str, ...] = ()) -> JSON:
    """Status fields are ``omitempty`` except the few in ``keep``: a zero count is absent, not 0."""
    return {k: v for k, v in status.items() if k in keep or v not in (0, None, "")}


def _resolve(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value or 0)


def max_unavailable(dep: JSON) -> int:
    """``deploymentutil.MaxUnavailable``: how far below spec.replicas the Deployment still counts as available."""
    spec = dep.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return min(unavailable, replicas)


def _condition(previous: list[JSON], kind: str, status: str, reason: str, message: str) -> JSON:
    """A condition keeping its timestamps while it says the same thing (lastTransitionTime: same status)."""
    now = now_rfc3339()
    old = next((c for c in previous if c.get("type") == kind), None)
    cond = {"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason}
    cond["message"] = message
    if old is not None and old.get("status") == status:
        cond["lastTransitionTime"] = old.get("lastTransitionTime", now)
        if (old.get("reason"), old.get("message")) == (reason, message):
            cond["lastUpdateTime"] = old.get("lastUpdateTime", now)
    return cond


class Controller:
    def __init__(self, store: ObjectStore, *, daemonset_nodes: int = 1) -> None:
        self.store = store
        self.daemonset_nodes = daemonset_nodes
        self.stalled: set[tuple[str, str]] = set()
        self.ticks = 0
        #: (namespace, deployment) -> (new ReplicaSet, monotonic time its stalled rollout started)
        self._progress_since: dict[tuple[str, str], tuple[str, float]] = {}

    # -- entry points ----------------------------------------------------------------------------------

    def on_change(self, res: Resource, namespace: str, name: str, seeded: bool) -> None:
        if res is DEPLOYMENTS:
            self.reconcile_deployment(namespace, name)
        if seeded:  # a seeded workload looks settled at once, as if it had been running for a while
            self.sync_status(res, namespace, name)

    def tick(self) -> None:
        self.ticks += 1
        for dep in self.store.items(DEPLOYMENTS):
            self.reconcile_deployment(dep["metadata"]["namespace"], dep["metadata"]["name"])
        for res in (DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS):
            for obj in self.store.items(res):
                self.sync_status(res, obj["metadata"]["namespace"], obj["metadata"]["name"])
        for pod in self.store.items(PODS):
            if "deletionTimestamp" in pod["metadata"]:
                self.store.remove(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])

    def sync_status(self, res: Resource, namespace: str, name: str) -> None:
        obj = self.store.get(res, namespace, name)
        if obj is None:
            return
        compute: dict[str, Callable[[JSON], JSON | None]] = {
            DEPLOYMENTS.plural: self._deployment_status,
            REPLICASETS.plural: self._replicaset_status,
            STATEFULSETS.plural: self._statefulset_status,
            DAEMONSETS.plural: self._daemonset_status,
        }
        status = compute[res.plural](obj) if res.plural in compute else None
        if status is not None and status != obj.get("status"):
            obj["status"] = status
            self.store.write(res, obj)  # a status write: new resourceVersion, same generation

    def is_stalled(self, obj: JSON) -> bool:
        return (obj["metadata"]["namespace"], obj["metadata"]["name"]) in self.stalled

    # -- deployments -----------------------------------------------------------------------------------

    def owned(self, owner: JSON, res: Resource = REPLICASETS) -> list[JSON]:
        uid = owner["metadata"]["uid"]
        return [
            obj
            for obj in self.store.items(res, owner["metadata"]["namespace"])
            if any(ref.get("uid") == uid and ref.get("controller") for ref in meta(obj).get("ownerReferences") or [])
        ]

    def new_replicaset(self, dep: JSON, owned: list[JSON]) -> JSON | None:
        template = dep["spec"]["template"]
        return next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == template), None)

    def reconcile_deployment(self, namespace: str, name: str) -> None:
        dep = self.store.get(DEPLOYMENTS, namespace, name)
        if dep is None or "deletionTimestamp" in dep["metadata"]:
            return
        owned = self.owned(dep)
        newest = max((revision(rs) for rs in owned), default=0)
        new_rs = self.new_replicaset(dep, owned)
        if new_rs is None:
            new_rs = self._create_replicaset(dep, newest + 1)
        elif revision(new_rs) < newest:
            new_rs = self._promote(new_rs, newest + 1)
        self._scale_replicasets(dep, new_rs)
        self._mirror_revision(dep, revision(new_rs))
        self._prune_history(dep, new_rs)

    def _create_replicaset(self, dep: JSON, number: int) -> JSON:
        m = dep["metadata"]
        pod_hash = template_hash(dep["spec"]["template"])
        template = copy.deepcopy(dep["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(dep["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": m["name"], "uid": m["uid"]}
        rs: JSON = {
            "metadata": {
                "name": f"{m['name']}-{pod_hash}",
                "namespace": m["namespace"],
                "labels": template["metadata"]["labels"],
                "annotations": {REVISION: str(number), DESIRED_REPLICAS: str(dep["spec"].get("replicas", 1))},
                "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        if "minReadySeconds" in dep["spec"]:
            rs["spec"]["minReadySeconds"] = dep["spec"]["minReadySeconds"]
        stamp_new(rs, REPLICASETS)
        return self.store.write(REPLICASETS, rs)

    def _promote(self, rs: JSON, number: int) -> JSON:
        annotations = meta(rs).setdefault("annotations", {})
        history = [h for h in (annotations.get(REVISION_HISTORY, "").split(",")) if h]
        annotations[REVISION_HISTORY] = ",".join([*history, annotations.get(REVISION, "0")])
        annotations[REVISION] = str(number)
        return self.store.write(REPLICASETS, rs)

    def _scale_replicasets(self, dep: JSON, new_rs: JSON) -> None:
        stalled = self.is_stalled(dep)
        for rs in self.owned(dep):
            is_new = rs["metadata"]["name"] == new_rs["metadata"]["name"]
            # A stuck rollout never scales the old ReplicaSets down: their pods are the ones still serving.
            target = dep["spec"].get("replicas", 1) if is_new else (rs["spec"]["replicas"] if stalled else 0)
            if rs["spec"].get("replicas") != target:
                rs["spec"]["replicas"] = target
                rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
                if is_new:
                    meta(rs).setdefault("annotations", {})[DESIRED_REPLICAS] = str(target)
                self.store.write(REPLICASETS, rs)

    def _mirror_revision(self, dep: JSON, number: int) -> None:
        # The real controller writes this through /status, which is why it does not bump the generation.
        current = self.store.get(DEPLOYMENTS, dep["metadata"]["namespace"], dep["metadata"]["name"])
        if current is None:
            return
        annotations = meta(current).setdefault("annotations", {})
        if annotations.get(REVISION) != str(number):
            annotations[REVISION] = str(number)
            self.store.write(DEPLOYMENTS, current)

    def _prune_history(self, dep: JSON, new_rs: JSON) -> None:
        limit = int(dep["spec"].get("revisionHistoryLimit", 10))
        old = [
            rs
            for rs in self.owned(dep)
            if rs["metadata"]["name"] != new_rs["metadata"]["name"] and rs["spec"].get("replicas", 0) == 0
        ]
        for rs in sorted(old, key=revision)[: max(len(old) - limit, 0)]:
            self.store.remove(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            self.store.collect_garbage(rs["metadata"]["uid"], "Background")

    # -- status ----------------------------------------------------------------------------------------

    def _deployment_status(self, dep: JSON) -> JSON | None:
        owned = self.owned(dep)
        new_rs = self.new_replicaset(dep, owned)
        if new_rs is None:
            return None
        if not self.is_stalled(dep):
            self._progress_since.pop((dep["metadata"]["namespace"], dep["metadata"]["name"]), None)
            return self._complete_deployment_status(dep, new_rs)
        return self._stalled_deployment_status(dep, new_rs, owned)

    def _complete_deployment_status(self, dep: JSON, new_rs: JSON) -> JSON:
        replicas = dep["spec"].get("replicas", 1)
        previous = (dep.get("status") or {}).get("conditions") or []
        rs_name = new_rs["metadata"]["name"]
        status = _drop_zeros(
            {
                "observedGeneration": dep["metadata"].get("generation", 1),
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
        )
        status["conditions"] = [
            _condition(
                previous, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
            ),
            _condition(
                previous,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            ),
        ]
        return status

    def _stalled_deployment_status(self, dep: JSON, new_rs: JSON, owned: list[JSON]) -> JSON | None:
        key = (dep["metadata"]["namespace"], dep["metadata"]["name"])
        previous: JSON = dep.get("status") or {}
        rs_name = new_rs["metadata"]["name"]
        since = self._progress_since.get(key)
        if since is None or since[0] != rs_name:
            since = self._progress_since[key] = (rs_name, time.monotonic())
        deadline = float(dep["spec"].get("progressDeadlineSeconds", 600))
        timed_out = time.monotonic() - since[1] > deadline
        observed = previous.get("observedGeneration") == dep["metadata"].get("generation", 1)
        progressing: JSON = next((c for c in previous.get("conditions") or [] if c.get("type") == "Progressing"), {})
        if observed and previous.get("conditions") and (not timed_out or progressing.get("status") == "False"):
            return None  # nothing new to observe: the stalled status stays exactly as it is
        return self._stalled_status_body(dep, new_rs, owned, timed_out)

    def _stalled_status_body(self, dep: JSON, new_rs: JSON, owned: list[JSON], timed_out: bool) -> JSON:
        previous: JSON = dep.get("status") or {}
        desired = dep["spec"].get("replicas", 1)
        old_replicas = sum(
            rs["spec"].get("replicas", 0) for rs in owned if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]
        )
        total = desired + old_replicas
        available = min(previous.get("availableReplicas", 0), total)
        status = _drop_zeros(
            {
                "observedGeneration": dep["metadata"].get("generation", 1),
                "replicas": total,
                "updatedReplicas": desired,
                "readyReplicas": min(previous.get("readyReplicas", 0), total),
                "availableReplicas": available,
                "unavailableReplicas": max(total - available, 0),
            }
        )
        conditions = previous.get("conditions") or []
        rs_name = new_rs["metadata"]["name"]
        if available >= desired - max_unavailable(dep):
            avail = _condition(
                conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
            )
        else:
            avail = _condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if timed_out:
            prog = _condition(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            prog = _condition(
                conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'
            )
        status["conditions"] = [avail, prog]
        return status

    def _owner(self, obj: JSON, res: Resource) -> JSON | None:
        for ref in meta(obj).get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == res.kind:
                return self.store.get(res, obj["metadata"]["namespace"], ref.get("name", ""))
        return None

    def _replicaset_status(self, rs: JSON) -> JSON:
        replicas = rs["spec"].get("replicas", 1)
        previous: JSON = rs.get("status") or {}
        owner = self._owner(rs, DEPLOYMENTS)
        frozen = owner is not None and self.is_stalled(owner)
        ready = min(previous.get("readyReplicas", 0), replicas) if frozen else replicas
        available = min(previous.get("availableReplicas", 0), replicas) if frozen else replicas
        status = {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        return _drop_zeros(status, keep=("replicas",))

    # -- statefulsets and daemonsets -------------------------------------------------------------------

    def _frozen_status(self, obj: JSON, complete: JSON, frozen: tuple[str, ...], keep: tuple[str, ...]) -> JSON | None:
        previous: JSON = obj.get("status") or {}
        if self.is_stalled(obj):
            if previous.get("observedGeneration") == obj["metadata"].get("generation", 1):
                return None
            complete = {**complete, **{k: previous.get(k, 0) for k in frozen}}
        return _drop_zeros(complete, keep=keep)

    def _statefulset_status(self, sts: JSON) -> JSON | None:
        replicas = sts["spec"].get("replicas", 1)
        rev = f"{sts['metadata']['name']}-{template_hash(sts['spec']['template'])}"
        complete = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "currentRevision": rev,
            "updateRevision": rev,
            "collisionCount": 0,
        }
        frozen = ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas", "currentRevision")
        return self._frozen_status(sts, complete, frozen, keep=("replicas", "availableReplicas"))

    def _daemonset_status(self, ds: JSON) -> JSON | None:
        nodes = self.daemonset_nodes
        complete = {
            "currentNumberScheduled": nodes,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": nodes,
            "numberReady": nodes,
            "observedGeneration": ds["metadata"].get("generation", 1),
            "updatedNumberScheduled": nodes,
            "numberAvailable": nodes,
        }
        frozen = ("numberReady", "updatedNumberScheduled", "numberAvailable")
        keep = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
        return self._frozen_status(ds, complete, frozen, keep)
