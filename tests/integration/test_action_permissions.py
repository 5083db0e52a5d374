"""Each Kubernetes action declares the RBAC it needs (`ActionSpec.permissions`), and deploy/kubernetes grants
that and docs/actions.md prints it. Here the declarations are held to what the actions really call: every action
runs through each of its paths against the fake API server, every request is read back as RBAC sees it (API group,
resource, verb), and the calls made must be exactly the permissions declared: none missing, none spare."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from autoremedy.actions.base import ActionContext, Outcome
from autoremedy.actions.kubernetes.actions import KubernetesActions
from autoremedy.actions.kubernetes.client import KubeClient
from autoremedy.actions.kubernetes.inputs import (
    DeletePodInputs,
    PatchServiceSelectorInputs,
    RestartInputs,
    RollbackInputs,
    ScaleInputs,
    WaitRolloutInputs,
)
from autoremedy.config.settings import KubernetesSettings
from autoremedy.observability import get_logger
from tests.support.fakekube import FakeKubeApiServer
from tests.support.fakekube.manifests import NS, deployment, pod
from tests.support.fakekube.server import RecordedRequest

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/[^/]+/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_VERBS = {"PATCH": "patch", "PUT": "update", "POST": "create", "DELETE": "delete"}


def as_rbac(request: RecordedRequest) -> tuple[str, str, str]:
    """(API group, resource, verb) of a request, as the API server's authorizer names them."""
    match = _PATH.match(request.path)
    assert match is not None, f"unexpected request {request.method} {request.path}"
    resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
    if request.method == "GET":
        verb = "get" if match["name"] else ("watch" if request.query.get("watch") else "list")
    else:
        verb = _VERBS[request.method]
    return match["group"] or "", resource, verb


class Cluster:
    def __init__(self, server: FakeKubeApiServer, actions: KubernetesActions, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.actions = actions
        self.http = http

    def ctx(self, operation: str) -> ActionContext:
        return ActionContext(
            run_id=operation.split(".", maxsplit=1)[0],
            operation_id=operation,
            target="t",
            deadline=asyncio.get_running_loop().time() + 10,
            dry_run=False,
            http=self.http,
            log=get_logger("test"),
        )

    async def calls(self, act: Callable[[], Awaitable[object]]) -> set[tuple[str, str, str]]:
        """What RBAC sees of one action call (which must succeed)."""
        before = len(self.server.requests)
        result = await act()
        assert getattr(result, "outcome", None) is Outcome.DONE, getattr(result, "message", result)
        return {as_rbac(request) for request in self.server.requests[before:]}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with FakeKubeApiServer() as server, aiohttp.ClientSession() as http:
        settings = KubernetesSettings(kubeconfig=server.write_kubeconfig(tmp_path / "kubeconfig"))
        client = KubeClient(settings)
        try:
            yield Cluster(server, KubernetesActions(client, settings.namespaces), http)
        finally:
            await client.close()


def workload(kind: str, name: str) -> dict[str, object]:
    obj = deployment(name, replicas=1)
    obj["kind"] = kind
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = name
    if kind == "DaemonSet":
        del obj["spec"]["replicas"]
    return obj


def hpa(target: str) -> dict[str, object]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"{target}-hpa", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }


async def every_path(cluster: Cluster) -> dict[str, set[tuple[str, str, str]]]:
    """Each action through each of its paths (kinds, with and without an HPA); what RBAC saw, by action."""
    seen: dict[str, set[tuple[str, str, str]]] = {}
    a, server = cluster.actions, cluster.server
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        server.add(workload(kind, kind.lower()))
    server.add(deployment("autoscaled", replicas=1))
    server.add(hpa("autoscaled"))
    for step, (kind, name) in enumerate(
        [("Deployment", "deployment"), ("StatefulSet", "statefulset"), ("Deployment", "autoscaled")]
    ):
        inputs = ScaleInputs(namespace=NS, name=name, kind=kind, replicas="+1")  # type: ignore[arg-type]
        seen.setdefault("kubernetes.scale", set()).update(
            await cluster.calls(lambda i=inputs, s=step: a.scale(i, cluster.ctx(f"scale.{s}")))
        )
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        restart = RestartInputs(namespace=NS, name=kind.lower(), kind=kind)  # type: ignore[arg-type]
        seen.setdefault("kubernetes.restart", set()).update(
            await cluster.calls(lambda i=restart, k=kind: a.restart(i, cluster.ctx(f"restart-{k}.0")))
        )
        wait = WaitRolloutInputs(namespace=NS, name=kind.lower(), kind=kind, interval="50ms")  # type: ignore[arg-type]
        seen.setdefault("kubernetes.wait_rollout", set()).update(
            await cluster.calls(lambda i=wait, k=kind: a.wait_rollout(i, cluster.ctx(f"wait-{k}.0")))
        )
    replicaset = next(rs for rs in server.list("ReplicaSet", NS) if rs["metadata"]["name"].startswith("deployment-"))
    server.add(pod("deployment-abc", app="deployment", owner=replicaset))
    seen["kubernetes.delete_pod"] = await cluster.calls(
        lambda: a.delete_pod(DeletePodInputs(namespace=NS, name="deployment-abc"), cluster.ctx("delete.0"))
    )
    changed = copy.deepcopy(server.get("Deployment", NS, "autoscaled"))
    assert changed is not None
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:broken"
    server.update(changed)
    await cluster.calls(lambda: a.wait_rollout(WaitRolloutInputs(namespace=NS, name="autoscaled"), cluster.ctx("w.0")))
    seen["kubernetes.rollback"] = await cluster.calls(
        lambda: a.rollback(RollbackInputs(namespace=NS, name="autoscaled"), cluster.ctx("rollback.0"))
    )
    server.add(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db-primary", "namespace": NS},
            "spec": {"selector": {"app": "db-0"}, "ports": [{"port": 5432}]},
        }
    )
    selector = PatchServiceSelectorInputs(namespace=NS, name="db-primary", selector={"app": "db-1"})
    seen["kubernetes.patch_service_selector"] = await cluster.calls(
        lambda: a.patch_service_selector(selector, cluster.ctx("selector.0"))
    )
    return seen


async def test_each_action_calls_exactly_what_it_declares(cluster: Cluster) -> None:
    seen = await every_path(cluster)
    declared = {
        spec.name: {(p.api_group, p.resource, verb) for p in spec.permissions for verb in p.verbs}
        for spec in cluster.actions.specs()
    }
    assert set(seen) == set(declared)
    for name, calls in seen.items():
        assert calls == declared[name], name
    assert ("apps", "replicasets", "list") in seen["kubernetes.rollback"]  # the paths did run
    assert ("autoscaling", "horizontalpodautoscalers", "patch") in seen["kubernetes.scale"]


async def test_a_missing_permission_is_a_forbidden_step(cluster: Cluster) -> None:
    # What an incomplete Role does: the step gives up with the API server's words and where RBAC is granted.
    cluster.server.add(deployment("web"))
    cluster.server.deny("patch", "deployments")
    result = await cluster.actions.restart(RestartInputs(namespace=NS, name="web"), cluster.ctx("r.0"))
    assert result.outcome is Outcome.GIVE_UP
    assert "forbidden" in result.message and "rbac" in result.message.lower()
