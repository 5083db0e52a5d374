"""The fake kube-apiserver, driven by the real kubernetes-asyncio client through a generated kubeconfig.

These tests pin down both halves of the contract our actions rely on: what the fake answers (shaped like the
real kube-apiserver) and how the real client talks (which patch Content-Type it picks, what it raises).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from tests.support.fakekube import DEFAULT_USER, HASH_LABEL, REVISION, REVISION_HISTORY, FakeKubeApiServer
from tests.support.fakekube.manifests import NS, deployment, pod
from tests.support.fakekube.patching import json_patch, merge_patch, strategic_merge
from tests.support.procs import wait_for

JSON = dict[str, Any]
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def status_of(exc: ApiException) -> JSON:
    body: JSON = json.loads(exc.body)
    return body


async def api_client(kube: FakeKubeApiServer, path: Path, token: str = "test-token") -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kube.write_kubeconfig(path, token=token)), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


@pytest.fixture
async def kube() -> AsyncIterator[FakeKubeApiServer]:
    async with FakeKubeApiServer() as server:
        yield server


@pytest.fixture
async def api(kube: FakeKubeApiServer, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    async with await api_client(kube, tmp_path / "kubeconfig") as api_client_:
        yield api_client_


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


async def settled(kube: FakeKubeApiServer, name: str = "web") -> JSON:
    """Wait for the rollout to complete by the rule ``kubectl rollout status`` applies; after that the
    controller leaves the Deployment alone, so a GET -> PUT no longer races it."""

    def check() -> JSON | None:
        dep = kube.get("Deployment", NS, name)
        assert dep is not None
        status, want = dep.get("status", {}), dep["spec"]["replicas"]
        counts = [status.get(k, 0) for k in ("replicas", "updatedReplicas", "availableReplicas")]
        done = status.get("observedGeneration") == dep["metadata"]["generation"] and counts == [want] * 3
        return dep if done else None

    result: JSON = await wait_for(check, timeout=5, message=f"deployment {name} did not settle")
    return result


def replicasets(kube: FakeKubeApiServer) -> dict[str, tuple[int, str]]:
    """ReplicaSet name -> (spec.replicas, revision annotation)."""
    return {
        rs["metadata"]["name"]: (rs["spec"]["replicas"], rs["metadata"]["annotations"][REVISION])
        for rs in kube.list("ReplicaSet", NS)
    }


# -- connection, reads -------------------------------------------------------------------------------------


async def test_kubeconfig_points_the_real_client_at_the_fake(kube: FakeKubeApiServer, api: client.ApiClient) -> None:
    assert api.configuration.host == kube.url
    version = await client.VersionApi(api).get_code()
    assert version.git_version.startswith("v1.")
    assert kube.requests[-1][:2] == ("GET", "/version/")


async def test_get_returns_the_seeded_deployment_with_server_fields(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    seeded = kube.add(deployment())
    got = await apps.read_namespaced_deployment("web", NS)
    assert got.kind == "Deployment" and got.api_version == "apps/v1"
    assert got.metadata.uid == seeded["metadata"]["uid"]
    assert got.metadata.generation == 1
    assert got.metadata.resource_version == seeded["metadata"]["resourceVersion"]
    assert got.metadata.annotations[REVISION] == "1"
    # Server-side defaults are there, as on a real cluster.
    assert got.spec.strategy.type == "RollingUpdate" and got.spec.revision_history_limit == 10
    assert got.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert got.status.available_replicas == 3 and got.status.observed_generation == 1


async def test_list_filters_by_selectors_and_items_carry_no_kind(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment("web"))
    kube.add(deployment("api"))
    kube.add(deployment("web", namespace="staging"))
    listed = await apps.list_namespaced_deployment(NS)
    assert listed.kind == "DeploymentList" and listed.api_version == "apps/v1"
    assert [d.metadata.name for d in listed.items] == ["api", "web"]
    assert int(listed.metadata.resource_version) >= int(listed.items[1].metadata.resource_version)
    # Like the real server, list items have no kind/apiVersion: the client leaves them None.
    assert listed.items[0].kind is None and listed.items[0].api_version is None
    by_label = await apps.list_namespaced_deployment(NS, label_selector="app=web,tier=frontend")
    assert [d.metadata.name for d in by_label.items] == ["web"]
    by_set = await apps.list_namespaced_deployment(NS, label_selector="app in (api, db),!canary")
    assert [d.metadata.name for d in by_set.items] == ["api"]
    by_field = await apps.list_namespaced_deployment(NS, field_selector="metadata.name=api")
    assert [d.metadata.name for d in by_field.items] == ["api"]
    everywhere = await apps.list_deployment_for_all_namespaces(label_selector="app=web")
    assert sorted(d.metadata.namespace for d in everywhere.items) == ["prod", "staging"]
    with pytest.raises(ApiException) as bad:
        await apps.list_namespaced_deployment(NS, field_selector="spec.replicas=3")
    assert bad.value.status == 400 and status_of(bad.value)["message"] == "field label not supported: spec.replicas"


async def test_missing_object_is_404_with_the_status_body(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        await apps.read_namespaced_deployment("web", NS)
    assert caught.value.status == 404
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


# -- create ------------------------------------------------------------------------------------------------


async def test_create_answers_201_with_server_fields_then_409_already_exists(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]),
            ),
        ),
    )
    created, code, _ = await apps.create_namespaced_deployment_with_http_info(NS, body)
    assert code == 201
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.generation == 1
    assert created.metadata.namespace == NS and created.spec.replicas == 1  # defaulted
    assert created.spec.template.spec.containers[0].image_pull_policy == "Always"  # untagged image
    assert kube.requests[-1].method == "POST" and kube.requests[-1].body["kind"] == "Deployment"
    await wait_for(lambda: kube.list("ReplicaSet", NS), timeout=5, message="no ReplicaSet for the new Deployment")
    with pytest.raises(ApiException) as caught:
        await apps.create_namespaced_deployment(NS, body)
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"
    assert status_of(caught.value)["message"] == 'deployments.apps "web" already exists'


async def test_create_with_a_resource_version_is_an_internal_error(apps: client.AppsV1Api) -> None:
    body = deployment()
    body["metadata"]["resourceVersion"] = "42"
    with pytest.raises(ApiException) as caught:
        await apps.create_namespaced_deployment(NS, body)
    assert caught.value.status == 500
    assert status_of(caught.value)["message"] == (
        "Internal error occurred: resourceVersion should not be set on objects to be created"
    )


# -- authentication and authorization ----------------------------------------------------------------------


async def test_wrong_token_is_401(kube: FakeKubeApiServer, tmp_path: Path) -> None:
    kube.add(deployment())
    async with await api_client(kube, tmp_path / "bad", token="wrong-token") as bad_api:
        with pytest.raises(ApiException) as caught:
            await client.AppsV1Api(bad_api).read_namespaced_deployment("web", NS)
    assert caught.value.status == 401
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


async def test_denied_verbs_are_403_with_the_rbac_message(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    kube.add(deployment())
    kube.deny("patch", "deployments", NS)
    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
    assert caught.value.status == 403
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'deployments.apps "web" is forbidden: User "{DEFAULT_USER}" cannot patch resource "deployments" '
        f'in API group "apps" in the namespace "prod"',
        "reason": "Forbidden",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 403,
    }
    # RBAC treats the scale subresource as a resource of its own: patching it is still allowed ...
    await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    kube.deny("patch", "deployments/scale", NS)
    with pytest.raises(ApiException) as scale:
        await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert 'cannot patch resource "deployments/scale" in API group "apps"' in status_of(scale.value)["message"]
    assert (await apps.read_namespaced_deployment("web", NS)).spec.replicas == 4  # reads still allowed
    kube.allow("patch", "deployments", NS)
    await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}})


async def test_list_without_permission_names_no_object(kube: FakeKubeApiServer, core: client.CoreV1Api) -> None:
    kube.deny("list", "pods")
    with pytest.raises(ApiException) as caught:
        await core.list_namespaced_pod(NS)
    assert status_of(caught.value)["message"] == (
        f'pods is forbidden: User "{DEFAULT_USER}" cannot list resource "pods" in API group "" in the namespace "prod"'
    )


# -- optimistic concurrency --------------------------------------------------------------------------------


async def test_replace_with_a_stale_resource_version_is_409(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    kube.add(deployment())
    await settled(kube)
    current = await apps.read_namespaced_deployment("web", NS)
    current.spec.replicas = 5
    replaced = await apps.replace_namespaced_deployment("web", NS, current)
    assert int(replaced.metadata.resource_version) > int(current.metadata.resource_version)
    assert replaced.metadata.generation == 2
    current.spec.replicas = 6  # still carries the old resourceVersion
    with pytest.raises(ApiException) as caught:
        await apps.replace_namespaced_deployment("web", NS, current)
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 409,
    }
    assert kube.get("Deployment", NS, "web")["spec"]["replicas"] == 5  # type: ignore[index]


async def test_another_writer_in_between_makes_our_replace_conflict(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    await settled(kube)
    ours = await apps.read_namespaced_deployment("web", NS)
    theirs = kube.get("Deployment", NS, "web")
    assert theirs is not None
    theirs["spec"]["replicas"] = 4
    assert kube.update(theirs)["metadata"]["generation"] == 2
    ours.spec.replicas = 5
    with pytest.raises(ApiException) as caught:
        await apps.replace_namespaced_deployment("web", NS, ours)
    assert caught.value.status == 409


async def test_patch_carrying_a_stale_resource_version_is_409(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    seeded = kube.add(deployment())
    await apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"touched": "yes"}}})
    stale = {"metadata": {"resourceVersion": seeded["metadata"]["resourceVersion"]}, "spec": {"replicas": 1}}
    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment("web", NS, stale)
    assert caught.value.status == 409 and status_of(caught.value)["reason"] == "Conflict"


async def test_main_resource_ignores_status_and_noop_writes_keep_the_resource_version(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    before = await settled(kube)
    body = copy.deepcopy(before)
    body["status"]["availableReplicas"] = 0
    after = await apps.replace_namespaced_deployment("web", NS, body)
    assert after.status.available_replicas == 3  # the main resource ignores status, like the real strategy
    assert after.metadata.resource_version == before["metadata"]["resourceVersion"]  # nothing changed: no write
    same = await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    assert same.metadata.resource_version == before["metadata"]["resourceVersion"]


# -- patches -----------------------------------------------------------------------------------------------


async def test_dict_body_is_a_strategic_merge_patch_merging_lists_by_key(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    patch = {
        "metadata": {"labels": {"tier": None}},  # null deletes
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.26", "env": [{"name": "DEBUG", "value": "1"}]},
                        {"name": "sidecar", "image": "envoy:1"},
                    ]
                }
            }
        },
    }
    patched = await apps.patch_namespaced_deployment("web", NS, patch)
    assert kube.requests[-1].content_type == SMP
    assert "tier" not in patched.metadata.labels
    web, sidecar = patched.spec.template.spec.containers
    assert (web.name, web.image, sidecar.name) == ("web", "nginx:1.26", "sidecar")
    assert [(e.name, e.value) for e in web.env] == [("MODE", "prod"), ("DEBUG", "1")]  # merged by name
    assert sidecar.image_pull_policy == "IfNotPresent"  # a new container is defaulted too
    removed = await apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    )
    assert [c.name for c in removed.spec.template.spec.containers] == ["web"]


async def test_model_body_is_sent_as_a_strategic_merge_patch_without_its_nones(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    # A partial model is hard to build: V1DeploymentSpec(replicas=7) raises, selector and template are required.
    with pytest.raises(ValueError, match="selector"):
        client.V1DeploymentSpec(replicas=7)
    body = client.V1Deployment(metadata=client.V1ObjectMeta(labels={"tier": None, "team": "a"}))
    patched = await apps.patch_namespaced_deployment("web", NS, body)
    assert kube.requests[-1].content_type == SMP
    # The client drops a model's None attributes, but a None inside a dict attribute goes out as null (deletes).
    assert kube.requests[-1].body == {"metadata": {"labels": {"tier": None, "team": "a"}}}
    assert patched.metadata.labels == {"app": "web", "team": "a"}


async def test_content_type_override_sends_a_merge_patch_that_replaces_lists(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    patched = await apps.patch_namespaced_deployment("web", NS, patch, _content_type=MERGE)
    assert kube.requests[-1].content_type == MERGE
    assert patched.spec.template.spec.containers[0].env is None  # the list was replaced, env went with it
    assert patched.spec.template.spec.containers[0].image == "nginx:1.27"


async def test_list_body_is_a_json_patch_and_a_failing_test_op_is_422(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/annotations/owner", "value": "team-a"},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "X", "value": "1"}},
    ]
    patched = await apps.patch_namespaced_deployment("web", NS, ops)
    assert kube.requests[-1].content_type == JSON_PATCH
    assert patched.spec.replicas == 4 and patched.metadata.annotations["owner"] == "team-a"
    assert [e.name for e in patched.spec.template.spec.containers[0].env] == ["MODE", "X"]
    rv = patched.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment("web", NS, [{"op": "test", "path": "/spec/replicas", "value": 3}])
    assert caught.value.status == 422
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid",
        "details": {},
        "code": 422,
    }
    assert int(kube.get("Deployment", NS, "web")["metadata"]["resourceVersion"]) >= int(rv)  # type: ignore[index]
    assert kube.get("Deployment", NS, "web")["spec"]["replicas"] == 4  # type: ignore[index]


# -- dry run -----------------------------------------------------------------------------------------------


async def test_dry_run_all_validates_and_answers_but_persists_nothing(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    seeded = kube.add(deployment())
    before = await settled(kube)
    answer = await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 9}}, dry_run="All")
    assert answer.spec.replicas == 9 and answer.metadata.generation == 2
    assert kube.requests[-1].query == {"dryRun": "All"}
    assert kube.get("Deployment", NS, "web") == before  # nothing stored, no resourceVersion bump
    created = await apps.create_namespaced_deployment(NS, deployment("new"), dry_run="All")
    assert created.metadata.uid and created.metadata.resource_version is None
    assert kube.get("Deployment", NS, "new") is None
    await apps.delete_namespaced_deployment("web", NS, dry_run="All")
    assert kube.get("Deployment", NS, "web") is not None and kube.deletions[-1].dry_run
    with pytest.raises(ApiException) as invalid:
        await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": -1}}, dry_run="All")
    assert invalid.value.status == 422  # a dry run still validates
    with pytest.raises(ApiException) as unknown:
        await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}}, dry_run="Maybe")
    assert unknown.value.status == 422  # the real server validates PatchOptions: 422, not 400
    assert status_of(unknown.value)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Maybe"}: supported values: "All"'
    )
    assert kube.get("Deployment", NS, "web")["metadata"]["uid"] == seeded["metadata"]["uid"]  # type: ignore[index]


# -- validation --------------------------------------------------------------------------------------------


async def test_invalid_objects_are_422_with_field_causes(apps: client.AppsV1Api) -> None:
    bad = deployment(replicas=-1)
    bad["metadata"]["name"] = "Bad_Name"
    with pytest.raises(ApiException) as caught:
        await apps.create_namespaced_deployment(NS, bad)
    status = status_of(caught.value)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Deployment" and status["details"]["group"] == "apps"
    fields = {c["field"]: c for c in status["details"]["causes"]}
    assert set(fields) == {"metadata.name", "spec.replicas"}
    assert fields["spec.replicas"] == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: -1: must be greater than or equal to 0",
        "field": "spec.replicas",
    }
    assert status["message"].startswith('Deployment.apps "Bad_Name" is invalid: [')
    mismatched = deployment("web")
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as labels:
        await apps.create_namespaced_deployment(NS, mismatched)
    assert status_of(labels.value)["details"]["causes"][0]["field"] == "spec.template.metadata.labels"


async def test_schema_violations_follow_the_decoder(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    wrong_type = deployment()
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(ApiException) as caught:
        await apps.create_namespaced_deployment(NS, wrong_type)
    assert caught.value.status == 400 and status_of(caught.value)["reason"] == "BadRequest"
    assert "cannot unmarshal string into Go struct field" in status_of(caught.value)["message"]
    missing = deployment()
    del missing["spec"]["selector"]
    with pytest.raises(ApiException) as required:
        await apps.create_namespaced_deployment(NS, missing)
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"} in status_of(
        required.value
    )["details"]["causes"]
    typo = deployment()
    typo["spec"]["replica"] = 5  # unknown fields are dropped with a warning by default ...
    created = await apps.create_namespaced_deployment(NS, typo)
    assert created.spec.replicas == 3
    assert kube.get("Deployment", NS, "web") is not None
    with pytest.raises(ApiException) as strict:  # ... and refused with fieldValidation=Strict
        await apps.create_namespaced_deployment(NS, {**typo, "metadata": {"name": "x"}}, field_validation="Strict")
    assert status_of(strict.value)["message"] == 'strict decoding error: unknown field "spec.replica"'


async def test_services_get_a_cluster_ip_and_their_selector_must_be_strings(
    kube: FakeKubeApiServer, core: client.CoreV1Api
) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    created = await core.create_namespaced_service(NS, svc)
    assert created.spec.cluster_ip.startswith("10.96.") and created.spec.ports[0].target_port == 80
    bad = copy.deepcopy(svc)
    bad["metadata"]["name"] = "web2"
    bad["spec"]["selector"] = {"app": 1}
    with pytest.raises(ApiException) as caught:
        await core.create_namespaced_service(NS, bad)
    assert caught.value.status == 400
    deleted = await core.delete_namespaced_service("web", NS)
    assert deleted.kind == "Service" and deleted.metadata.name == "web"  # services answer with the object


# -- scale -------------------------------------------------------------------------------------------------


async def test_scale_subresource_reads_and_patches_spec_replicas(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    scale = await apps.read_namespaced_deployment_scale("web", NS)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.spec.replicas == 3 and scale.status.replicas == 3 and scale.status.selector == "app=web"
    patched = await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5 and patched.status.replicas == 3  # status catches up later
    assert kube.get("Deployment", NS, "web")["metadata"]["generation"] == 2  # type: ignore[index]
    dep = await settled(kube)
    assert dep["status"]["replicas"] == 5
    stale = client.V1Scale(metadata=client.V1ObjectMeta(name="web", resource_version="1"), spec=client.V1ScaleSpec(2))
    with pytest.raises(ApiException) as conflict:
        await apps.replace_namespaced_deployment_scale("web", NS, stale)
    assert conflict.value.status == 409
    with pytest.raises(ApiException) as negative:
        await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}})
    assert status_of(negative.value)["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )


async def test_statefulset_scale_and_status(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    sts = deployment("db")
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    kube.add(sts)
    await apps.patch_namespaced_stateful_set_scale("db", NS, {"spec": {"replicas": 1}})

    async def ready() -> bool:
        got = await apps.read_namespaced_stateful_set_status("db", NS)
        return bool(got.status.ready_replicas == 1 and got.status.observed_generation == 2)

    await wait_for(ready, timeout=5, message="statefulset status did not follow the scale")


async def test_zero_counts_are_absent_so_the_client_reads_none(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    kube.add(deployment(replicas=0))
    got = await apps.read_namespaced_deployment_status("web", NS)
    assert kube.requests[-1].path.endswith("/deployments/web/status")
    assert got.status.observed_generation == 1
    # omitempty: a real server sends no 0 counts, so the client gives None where one might expect 0.
    assert got.status.replicas is None and got.status.available_replicas is None


async def test_status_written_for_a_stalled_deployment_stays(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    kube.add(deployment())
    kube.stall_rollouts(NS, "web")  # otherwise the controller puts its own status back
    kube.patch_status("Deployment", NS, "web", {"readyReplicas": 1, "availableReplicas": 1})
    ticks = kube.controller_ticks
    await wait_for(lambda: kube.controller_ticks >= ticks + 3, timeout=5, message="the controller stopped ticking")
    got = await apps.read_namespaced_deployment("web", NS)
    assert (got.status.available_replicas, got.status.ready_replicas, got.metadata.generation) == (1, 1, 1)


# -- the deployment controller -----------------------------------------------------------------------------


async def test_template_change_makes_revision_2_and_undo_reuses_the_old_replicaset(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    (first,) = replicasets(kube)
    assert replicasets(kube)[first] == (3, "1")
    rs = kube.get("ReplicaSet", NS, first)
    assert rs is not None
    assert rs["metadata"]["ownerReferences"][0]["controller"] is True
    assert rs["metadata"]["labels"][HASH_LABEL] == first.rsplit("-", 1)[1]
    assert rs["spec"]["selector"]["matchLabels"][HASH_LABEL] == first.rsplit("-", 1)[1]

    new_image = {"containers": [{"name": "web", "image": "nginx:1.26"}]}
    await apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": new_image}}})
    (second,) = set(replicasets(kube)) - {first}
    assert replicasets(kube) == {first: (0, "1"), second: (3, "2")}
    assert (await apps.read_namespaced_deployment("web", NS)).metadata.annotations[REVISION] == "2"

    # Undo as kubectl does: copy the old ReplicaSet's template (minus its hash label) back into the Deployment.
    template = copy.deepcopy(rs["spec"]["template"])
    del template["metadata"]["labels"][HASH_LABEL]
    await apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/template", "value": template}])
    assert replicasets(kube) == {first: (3, "3"), second: (0, "2")}
    reused = kube.get("ReplicaSet", NS, first)
    assert reused is not None and reused["metadata"]["annotations"][REVISION_HISTORY] == "1"
    dep = await settled(kube)
    assert dep["metadata"]["annotations"][REVISION] == "3" and dep["metadata"]["generation"] == 3
    assert dep["status"]["conditions"][1]["message"] == f'ReplicaSet "{first}" has successfully progressed.'


async def test_stalled_rollout_keeps_status_behind_until_resumed(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    await settled(kube)
    kube.stall_rollouts(NS, "web")
    # What `kubectl rollout restart` sends: a template annotation, so a new ReplicaSet.
    restart = {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}
    await apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": restart}}})

    def observed() -> JSON | None:
        dep = kube.get("Deployment", NS, "web")
        assert dep is not None
        return dep if dep["status"].get("observedGeneration") == 2 else None

    stalled = await wait_for(observed, timeout=5, message="the stalled rollout was never observed")
    ticks = kube.controller_ticks
    await wait_for(lambda: kube.controller_ticks >= ticks + 5, timeout=5, message="the controller stopped ticking")
    dep = kube.get("Deployment", NS, "web")
    assert dep == stalled  # five more controller passes changed nothing
    status = dep["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (6, 3, 3)
    assert status["unavailableReplicas"] == 3
    assert [c["reason"] for c in status["conditions"]] == ["MinimumReplicasAvailable", "ReplicaSetUpdated"]
    assert sorted(replicas for replicas, _ in replicasets(kube).values()) == [3, 3]  # old pods still serving

    kube.stall_rollouts(NS, "web", stalled=False)
    done = await settled(kube)
    assert done["status"]["replicas"] == 3 and "unavailableReplicas" not in done["status"]
    assert sorted(replicas for replicas, _ in replicasets(kube).values()) == [0, 3]


async def test_stalled_rollout_exceeds_its_progress_deadline(kube: FakeKubeApiServer) -> None:
    dep = deployment()
    dep["spec"]["progressDeadlineSeconds"] = 1
    kube.stall_rollouts(NS, "web")
    kube.add(dep)

    def progressing() -> JSON | None:
        got = kube.get("Deployment", NS, "web")
        assert got is not None
        cond = next(c for c in got["status"]["conditions"] if c["type"] == "Progressing")
        return cond if cond["status"] == "False" else None

    cond = await wait_for(progressing, timeout=10, message="the progress deadline never passed")
    assert cond["reason"] == "ProgressDeadlineExceeded"
    assert cond["message"].endswith("has timed out progressing.")


# -- deletes -----------------------------------------------------------------------------------------------


async def test_pod_delete_honours_the_grace_period_from_query_or_body(
    kube: FakeKubeApiServer, core: client.CoreV1Api
) -> None:
    kube.add(pod("web-1"))
    kube.add(pod("web-2", grace=30))
    gone = await core.delete_namespaced_pod("web-1", NS, grace_period_seconds=0)
    assert gone.kind == "Pod" and kube.get("Pod", NS, "web-1") is None
    assert kube.requests[-1].query == {"gracePeriodSeconds": "0"}
    terminating = await core.delete_namespaced_pod("web-2", NS, body=client.V1DeleteOptions(grace_period_seconds=5))
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 5
    await wait_for(lambda: kube.get("Pod", NS, "web-2") is None, timeout=5, message="the pod never went away")
    assert [(d.name, d.grace_period_seconds) for d in kube.deletions] == [("web-1", 0), ("web-2", 5)]


async def test_deployment_delete_answers_a_status_and_collects_its_dependents(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    (rs,) = kube.list("ReplicaSet", NS)
    kube.add(pod("web-1", owner=rs))
    kube.add(pod("loner"))
    answer = await apps.delete_namespaced_deployment("web", NS, propagation_policy="Background")
    assert answer.kind == "Status" and answer.status == "Success" and answer.details.kind == "deployments"
    assert kube.list("ReplicaSet", NS) == [] and [p["metadata"]["name"] for p in kube.list("Pod", NS)] == ["loner"]
    assert kube.deletions[-1].propagation_policy == "Background"


async def test_orphan_delete_keeps_dependents_without_owner(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    kube.add(deployment())
    await apps.delete_namespaced_deployment("web", NS, body=client.V1DeleteOptions(propagation_policy="Orphan"))
    (rs,) = kube.list("ReplicaSet", NS)
    assert "ownerReferences" not in rs["metadata"]


# -- HPA ---------------------------------------------------------------------------------------------------


async def test_hpa_v2_create_patch_and_validate(kube: FakeKubeApiServer, api: client.ApiClient) -> None:
    hpas = client.AutoscalingV2Api(api)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 5,
        },
    }
    created = await hpas.create_namespaced_horizontal_pod_autoscaler(NS, hpa)
    assert created.spec.min_replicas == 1 and created.spec.metrics[0].resource.name == "cpu"  # defaults
    assert created.status.desired_replicas == 0 and created.metadata.generation is None
    patched = await hpas.patch_namespaced_horizontal_pod_autoscaler("web", NS, {"spec": {"maxReplicas": 10}})
    assert patched.spec.max_replicas == 10
    with pytest.raises(ApiException) as caught:
        await hpas.patch_namespaced_horizontal_pod_autoscaler("web", NS, {"spec": {"minReplicas": 20}})
    assert status_of(caught.value)["message"] == (
        'HorizontalPodAutoscaler.autoscaling "web" is invalid: spec.maxReplicas: Invalid value: 10: '
        "must be greater than or equal to `minReplicas`"
    )


# -- injected faults ---------------------------------------------------------------------------------------


async def test_fail_next_answers_503_once_then_serves(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    kube.add(deployment())
    fault = kube.fail_next("PATCH", r"/deployments/web$", 503)
    with pytest.raises(ApiException) as caught:
        await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
    assert caught.value.status == 503
    assert status_of(caught.value)["reason"] == "ServiceUnavailable"
    assert kube.get("Deployment", NS, "web")["spec"]["replicas"] == 3  # type: ignore[index]
    patched = await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
    assert patched.spec.replicas == 4 and fault.hits == 1 and fault.remaining == 0


async def test_fail_next_conflict_uses_the_real_conflict_body(kube: FakeKubeApiServer, apps: client.AppsV1Api) -> None:
    kube.add(deployment())
    kube.fail_next("*", r"/deployments/web$", 409, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})
        assert status_of(caught.value)["reason"] == "Conflict"
    assert (await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 4}})).spec.replicas == 4


async def test_a_delayed_write_times_out_in_the_client_but_still_happens(
    kube: FakeKubeApiServer, apps: client.AppsV1Api
) -> None:
    kube.add(deployment())
    kube.fail_next("PATCH", r"/deployments/web$", None, delay=1.0)
    with pytest.raises(TimeoutError):
        await apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 8}}, _request_timeout=0.2)
    await wait_for(
        lambda: kube.get("Deployment", NS, "web")["spec"]["replicas"] == 8,  # type: ignore[index]
        timeout=5,
        message="the delayed patch was never applied",
    )


# -- the patch algorithms on their own ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}, {"a": {"c": 2, "d": 3}}),
        ({"spec": {"ports": [{"port": 80, "name": "http"}]}}, {"spec": {"ports": [{"port": 80, "name": "web"}]}},
         {"spec": {"ports": [{"port": 80, "name": "web"}]}}),  # Service ports merge on "port"
        ({"ports": [{"containerPort": 80, "name": "a"}]}, {"ports": [{"containerPort": 81, "name": "b"}]},
         {"ports": [{"containerPort": 80, "name": "a"}, {"containerPort": 81, "name": "b"}]}),
        ({"args": ["a", "b"]}, {"args": ["c"]}, {"args": ["c"]}),  # no merge key: replace
        ({"finalizers": ["a"]}, {"finalizers": ["b"]}, {"finalizers": ["a", "b"]}),
        ({"x": {"a": 1, "b": 2}}, {"x": {"$patch": "replace", "c": 3}}, {"x": {"c": 3}}),
        ({"x": {"a": 1, "b": 2}}, {"x": {"$retainKeys": ["b", "c"], "c": 3}}, {"x": {"b": 2, "c": 3}}),
        ({"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]}, {"finalizers": ["b"]}),
        ({"env": [{"name": "A"}]}, {"$setElementOrder/env": [{"name": "A"}], "env": [{"name": "B"}]},
         {"env": [{"name": "A"}, {"name": "B"}]}),
    ],
)  # fmt: skip
def test_strategic_merge_patch(original: JSON, patch: JSON, expected: JSON) -> None:
    assert strategic_merge(original, patch) == expected


def test_merge_patch_follows_rfc_7386() -> None:
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {
        "a": "z",
        "c": {"d": "e"},
    }
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_json_patch_follows_rfc_6902() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [
        {"op": "move", "from": "/c", "path": "/d"},
        {"op": "copy", "from": "/a/b/0", "path": "/a/b/-"},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "add", "path": "/e~1f", "value": True},
        {"op": "test", "path": "/e~1f", "value": True},
    ]
    assert json_patch(doc, ops) == {"a": {"b": [1, 1]}, "d": "x", "e/f": True}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}  # the input is left alone
    for bad in ([{"op": "test", "path": "/c", "value": "y"}], [{"op": "remove", "path": "/nope"}]):
        with pytest.raises(Exception, match="422 Invalid"):
            json_patch(doc, bad)
    with pytest.raises(Exception, match="400 BadRequest"):
        json_patch(doc, [{"op": "frobnicate", "path": "/a"}])
