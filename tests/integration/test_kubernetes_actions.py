"""The Kubernetes actions against the fake API server, through the real kubernetes-asyncio client: each action's
success, its idempotent repetition, dry-run, and each class of error."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from autoremedy.actions.base import ActionContext, ActionResult, Outcome
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
from tests.support.fakekube import REVISION, FakeKubeApiServer
from tests.support.fakekube.manifests import NS, deployment, pod
from tests.support.procs import wait_for


class Kube:
    def __init__(self, server: FakeKubeApiServer, actions: KubernetesActions, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.actions = actions
        self.http = http

    def ctx(self, *, operation: str = "run1.0", dry_run: bool = False, seconds: float = 10) -> ActionContext:
        deadline = asyncio.get_running_loop().time() + seconds
        return ActionContext(
            run_id=operation.split(".", maxsplit=1)[0],
            operation_id=operation,
            target="t",
            deadline=deadline,
            dry_run=dry_run,
            http=self.http,
            log=get_logger("test"),
        )

    def writes(self) -> list[Any]:
        return [r for r in self.server.requests if r.method in ("PATCH", "PUT", "POST", "DELETE")]

    async def settled(self, name: str = "web") -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            obj = self.server.get("Deployment", NS, name)
            assert obj is not None
            status, generation = obj.get("status", {}), obj["metadata"].get("generation", 0)
            ok = status.get("observedGeneration") == generation and status.get("updatedReplicas") == obj["spec"][
                "replicas"
            ] == status.get("availableReplicas")
            return obj if ok else None

        return await wait_for(done, timeout=10, message=f"deployment {name} settles")


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    async with FakeKubeApiServer() as server, aiohttp.ClientSession() as http:
        settings = KubernetesSettings(
            kubeconfig=server.write_kubeconfig(tmp_path / "kubeconfig"), namespaces={"deny": ["kube-system"]}
        )
        client = KubeClient(settings)
        try:
            yield Kube(server, KubernetesActions(client, settings.namespaces), http)
        finally:
            await client.close()


def hpa(target: str = "web", *, minimum: int = 2, maximum: int = 5) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"{target}-hpa", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }


def assert_done(result: ActionResult) -> None:
    assert result.outcome is Outcome.DONE, result.message


# -- scale -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "bounds", "expected", "clamped"),
    [
        pytest.param(5, {}, 5, False, id="absolute"),
        pytest.param("5", {}, 5, False, id="absolute-rendered-string"),
        pytest.param("+2", {}, 5, False, id="relative-up"),
        pytest.param("-1", {}, 2, False, id="relative-down"),
        pytest.param("+10", {"max": 6}, 6, True, id="max-bound"),
        pytest.param("-5", {"min": 2}, 2, True, id="min-bound"),
    ],
)
async def test_scale(kube: Kube, replicas: int | str, bounds: dict[str, int], expected: int, clamped: bool) -> None:
    kube.server.add(deployment(replicas=3))
    result = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas=replicas, **bounds), kube.ctx())
    assert_done(result)
    assert (result.data["from"], result.data["to"], result.data["clamped"]) == (3, expected, clamped)
    assert kube.server.get("Deployment", NS, "web")["spec"]["replicas"] == expected  # type: ignore[index]


async def test_scale_repeated_by_the_same_step_changes_nothing(kube: Kube) -> None:
    kube.server.add(deployment(replicas=3))
    assert_done(await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas="+2"), kube.ctx()))
    writes = len(kube.writes())
    again = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas="+2"), kube.ctx())
    assert_done(again)
    assert "already scaled by this step" in again.message
    assert len(kube.writes()) == writes
    assert kube.server.get("Deployment", NS, "web")["spec"]["replicas"] == 5  # type: ignore[index]


async def test_scale_raises_the_hpa_instead_of_fighting_it(kube: Kube) -> None:
    kube.server.add(deployment(replicas=3))
    kube.server.add(hpa(minimum=2, maximum=5))
    result = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas=7, max=10), kube.ctx())
    assert_done(result)
    assert result.data["hpa"] == {
        "name": "web-hpa",
        "from": {"minReplicas": 2, "maxReplicas": 5},
        "to": {"minReplicas": 7, "maxReplicas": 7},
    }
    spec = kube.server.get("HorizontalPodAutoscaler", NS, "web-hpa")["spec"]  # type: ignore[index]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (7, 7)
    assert kube.server.get("Deployment", NS, "web")["spec"]["replicas"] == 3  # type: ignore[index]


async def test_scale_statefulset(kube: Kube) -> None:
    sts = deployment("db", replicas=1)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    kube.server.add(sts)
    assert_done(
        await kube.actions.scale(ScaleInputs(namespace=NS, name="db", kind="StatefulSet", replicas=3), kube.ctx())
    )
    assert kube.server.get("StatefulSet", NS, "db")["spec"]["replicas"] == 3  # type: ignore[index]


async def test_scale_dry_run_asks_the_server_and_persists_nothing(kube: Kube) -> None:
    kube.server.add(deployment(replicas=3))
    result = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas=9), kube.ctx(dry_run=True))
    assert_done(result)
    assert result.data["to"] == 9
    patches = [r for r in kube.writes() if r.method == "PATCH"]
    assert [r.query.get("dryRun") for r in patches] == ["All"]
    assert kube.server.get("Deployment", NS, "web")["spec"]["replicas"] == 3  # type: ignore[index]


@pytest.mark.parametrize("replicas", ["many", "+", "2.5"])
async def test_scale_rejects_bad_counts(kube: Kube, replicas: str) -> None:
    kube.server.add(deployment())
    result = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas=replicas), kube.ctx())
    assert result.outcome is Outcome.GIVE_UP and "must be a count" in result.message


# -- restart ----------------------------------------------------------------------------------------------


async def test_restart_as_kubectl_does_it_and_only_once(kube: Kube) -> None:
    kube.server.add(deployment())
    await kube.settled()
    result = await kube.actions.restart(RestartInputs(namespace=NS, name="web"), kube.ctx())
    assert_done(result)
    annotations = kube.server.get("Deployment", NS, "web")["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == result.data["restartedAt"]
    settled = await kube.settled()
    assert settled["metadata"]["annotations"][REVISION] == "2"
    writes = len(kube.writes())
    assert (
        "already restarted" in (await kube.actions.restart(RestartInputs(namespace=NS, name="web"), kube.ctx())).message
    )
    assert len(kube.writes()) == writes
    assert_done(await kube.actions.restart(RestartInputs(namespace=NS, name="web"), kube.ctx(operation="run2.0")))
    assert (await kube.settled())["metadata"]["annotations"][REVISION] == "3"


async def test_restart_daemonset(kube: Kube) -> None:
    ds = deployment("agent")
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    kube.server.add(ds)
    assert_done(await kube.actions.restart(RestartInputs(namespace=NS, name="agent", kind="DaemonSet"), kube.ctx()))
    template = kube.server.get("DaemonSet", NS, "agent")["spec"]["template"]  # type: ignore[index]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]


# -- delete pod -------------------------------------------------------------------------------------------


async def test_delete_pod_with_grace_period(kube: Kube) -> None:
    kube.server.add(deployment())
    await kube.settled()
    (rs,) = kube.server.list("ReplicaSet", NS)
    kube.server.add(pod("web-abc", owner=rs))
    result = await kube.actions.delete_pod(
        DeletePodInputs(namespace=NS, name="web-abc", grace_period_seconds=5), kube.ctx()
    )
    assert_done(result)
    assert [(d.name, d.grace_period_seconds) for d in kube.server.deletions] == [("web-abc", 5)]
    await wait_for(lambda: kube.server.get("Pod", NS, "web-abc") is None, timeout=10, message="the pod goes")
    gone = await kube.actions.delete_pod(DeletePodInputs(namespace=NS, name="web-abc"), kube.ctx())
    assert_done(gone)
    assert "already gone" in gone.message


async def test_delete_pod_refuses_an_orphan_unless_allowed(kube: Kube) -> None:
    kube.server.add(pod("lonely"))
    refused = await kube.actions.delete_pod(DeletePodInputs(namespace=NS, name="lonely"), kube.ctx())
    assert refused.outcome is Outcome.GIVE_UP and "no controller" in refused.message
    assert kube.server.deletions == []
    allowed = await kube.actions.delete_pod(DeletePodInputs(namespace=NS, name="lonely", allow_orphan=True), kube.ctx())
    assert_done(allowed)
    assert [d.name for d in kube.server.deletions] == ["lonely"]


# -- rollback ---------------------------------------------------------------------------------------------


async def bad_deploy(kube: Kube) -> None:
    kube.server.add(deployment(image="shop:1.0"))
    await kube.settled()
    updated = copy.deepcopy(kube.server.get("Deployment", NS, "web"))
    assert updated is not None
    updated["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:1.1-broken"
    kube.server.update(updated)
    await kube.settled()


async def test_rollback_restores_the_previous_template(kube: Kube) -> None:
    await bad_deploy(kube)
    result = await kube.actions.rollback(RollbackInputs(namespace=NS, name="web"), kube.ctx())
    assert_done(result)
    assert result.data["from_revision"] == "2"
    settled = await kube.settled()
    assert settled["spec"]["template"]["spec"]["containers"][0]["image"] == "shop:1.0"
    assert settled["metadata"]["annotations"][REVISION] == "3"  # the old ReplicaSet is reused, as kubectl's undo
    assert len(kube.server.list("ReplicaSet", NS)) == 2
    writes = len(kube.writes())
    assert (
        "already rolled back"
        in (await kube.actions.rollback(RollbackInputs(namespace=NS, name="web"), kube.ctx())).message
    )
    assert len(kube.writes()) == writes


async def test_rollback_to_a_revision_and_refusals(kube: Kube) -> None:
    kube.server.add(deployment(image="shop:1.0"))
    await kube.settled()
    none = await kube.actions.rollback(RollbackInputs(namespace=NS, name="web"), kube.ctx())
    assert none.outcome is Outcome.GIVE_UP
    assert "no revision earlier than the current 1" in none.message
    missing = await kube.actions.rollback(RollbackInputs(namespace=NS, name="web", to_revision=7), kube.ctx())
    assert missing.outcome is Outcome.GIVE_UP and "revision 7 not found (known revisions: 1)" in missing.message


async def test_rollback_dry_run(kube: Kube) -> None:
    await bad_deploy(kube)
    assert_done(await kube.actions.rollback(RollbackInputs(namespace=NS, name="web"), kube.ctx(dry_run=True)))
    image = kube.server.get("Deployment", NS, "web")["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image == "shop:1.1-broken"


# -- service selector -------------------------------------------------------------------------------------


def service(selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db-primary", "namespace": NS},
        "spec": {"selector": selector, "ports": [{"port": 5432}]},
    }


async def test_patch_service_selector_replaces_the_whole_selector(kube: Kube) -> None:
    kube.server.add(service({"app": "postgres", "instance": "pg-0"}))
    inputs = PatchServiceSelectorInputs(namespace=NS, name="db-primary", selector={"app": "postgres-replica"})
    result = await kube.actions.patch_service_selector(inputs, kube.ctx())
    assert_done(result)
    assert kube.server.get("Service", NS, "db-primary")["spec"]["selector"] == {"app": "postgres-replica"}  # type: ignore[index]
    writes = len(kube.writes())
    assert "already selects" in (await kube.actions.patch_service_selector(inputs, kube.ctx())).message
    assert len(kube.writes()) == writes


# -- wait for rollout -------------------------------------------------------------------------------------


async def test_wait_rollout_sees_completion(kube: Kube) -> None:
    kube.server.add(deployment())
    await kube.actions.restart(RestartInputs(namespace=NS, name="web"), kube.ctx())
    result = await kube.actions.wait_rollout(WaitRolloutInputs(namespace=NS, name="web", interval="50ms"), kube.ctx())
    assert_done(result)
    assert "3 replicas updated and available" in result.message


async def test_wait_rollout_gives_up_at_the_step_deadline(kube: Kube) -> None:
    kube.server.add(deployment())
    await kube.settled()
    kube.server.stall_rollouts(NS, "web")
    await kube.actions.restart(RestartInputs(namespace=NS, name="web"), kube.ctx())
    result = await kube.actions.wait_rollout(
        WaitRolloutInputs(namespace=NS, name="web", interval="50ms"), kube.ctx(seconds=0.6)
    )
    assert result.outcome is Outcome.GIVE_UP
    assert "not complete within the step timeout" in result.message


# -- errors -----------------------------------------------------------------------------------------------


async def test_not_found_gives_up_with_the_servers_words(kube: Kube) -> None:
    result = await kube.actions.restart(RestartInputs(namespace=NS, name="ghost"), kube.ctx())
    assert result.outcome is Outcome.GIVE_UP
    assert result.message == 'not found: deployments.apps "ghost" not found'


async def test_forbidden_names_the_missing_permission(kube: Kube) -> None:
    kube.server.add(deployment())
    kube.server.deny("patch", "deployments", NS)
    result = await kube.actions.restart(RestartInputs(namespace=NS, name="web"), kube.ctx())
    assert result.outcome is Outcome.GIVE_UP
    assert 'cannot patch resource "deployments" in API group "apps" in the namespace "prod"' in result.message
    assert "deploy/kubernetes/base/rbac.yaml" in result.message


@pytest.mark.parametrize("status", [409, 500, 503, 429])
async def test_conflicts_and_server_errors_are_retried_within_the_step(kube: Kube, status: int) -> None:
    kube.server.add(deployment(replicas=3))
    fault = kube.server.fail_next("PATCH", r"/deployments/web$", status, times=2)
    result = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas=4), kube.ctx())
    assert_done(result)
    assert fault.hits == 2
    assert kube.server.get("Deployment", NS, "web")["spec"]["replicas"] == 4  # type: ignore[index]


async def test_persistent_server_errors_end_as_retry_before_the_deadline(kube: Kube) -> None:
    kube.server.add(deployment())
    kube.server.fail_next("PATCH", r"/deployments/web$", 503, times=1000)
    result = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas=4), kube.ctx(seconds=0.8))
    assert result.outcome is Outcome.RETRY
    assert "Kubernetes API answered 503" in result.message


async def test_invalid_is_given_up(kube: Kube) -> None:
    kube.server.add(deployment())
    kube.server.fail_next("PATCH", r"/deployments/web$", 422, message="spec.replicas: Invalid value")
    result = await kube.actions.scale(ScaleInputs(namespace=NS, name="web", replicas=4), kube.ctx())
    assert result.outcome is Outcome.GIVE_UP and result.message.startswith("rejected as invalid")


@pytest.mark.parametrize(
    ("namespace", "name", "problem"),
    [
        pytest.param(NS, "Web_1", "not a valid DNS-1123 subdomain", id="bad-name"),
        pytest.param("kube-system", "coredns", "denied by kubernetes.namespaces.deny", id="denied-namespace"),
        pytest.param("Prod", "web", "not a valid DNS-1123 label", id="bad-namespace"),
        pytest.param(NS, "", "is empty", id="empty-name"),
    ],
)
async def test_names_and_namespaces_are_checked_before_any_call(
    kube: Kube, namespace: str, name: str, problem: str
) -> None:
    result = await kube.actions.restart(RestartInputs(namespace=namespace, name=name), kube.ctx())
    assert result.outcome is Outcome.GIVE_UP and problem in result.message
    assert kube.server.requests == []
