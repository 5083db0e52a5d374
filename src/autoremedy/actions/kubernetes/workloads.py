"""Reading and patching Deployments, StatefulSets and DaemonSets through one interface, as plain dicts."""

from __future__ import annotations

from typing import Any

from autoremedy.actions.kubernetes.client import KubeClient

_METHODS = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}


class Workloads:
    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def read(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        apps = await self._client.apps()
        method = getattr(apps, f"read_namespaced_{_METHODS[kind]}")
        return await self._client.as_dict(await method(name, namespace, _request_timeout=self._client.request_timeout))

    async def patch(self, kind: str, namespace: str, name: str, body: Any, **kwargs: Any) -> dict[str, Any]:
        """A dict body is sent as a strategic merge patch, a list as a JSON patch (kubernetes-asyncio's rule)."""
        apps = await self._client.apps()
        method = getattr(apps, f"patch_namespaced_{_METHODS[kind]}")
        return await self._client.as_dict(
            await method(name, namespace, body, _request_timeout=self._client.request_timeout, **kwargs)
        )

    async def replicasets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """The ReplicaSets that the Deployment's selector picks (ownership is checked by the caller)."""
        match = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        apps = await self._client.apps()
        listed = await apps.list_namespaced_replica_set(
            deployment["metadata"]["namespace"], label_selector=selector, _request_timeout=self._client.request_timeout
        )
        items: list[dict[str, Any]] = (await self._client.as_dict(listed)).get("items", [])
        return items
