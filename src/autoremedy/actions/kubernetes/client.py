"""One kubernetes-asyncio API client per process, created on first use.

kubernetes-asyncio is imported when the first client connects, not with this module: importing it takes about
half a second, and the commands that only load rules (`validate`, `test`, `backtest`) never call the API."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from autoremedy.config.settings import KubernetesSettings

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient, AppsV1Api, AutoscalingV2Api, CoreV1Api


class KubeClient:
    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self._api: ApiClient | None = None
        self._lock = asyncio.Lock()

    async def api(self) -> ApiClient:
        async with self._lock:
            if self._api is None:
                self._api = await self._connect()
            return self._api

    async def _connect(self) -> ApiClient:
        from kubernetes_asyncio import config  # noqa: PLC0415 (on first use)
        from kubernetes_asyncio.client import ApiClient, Configuration  # noqa: PLC0415 (on first use)

        kubeconfig, context = self.settings.kubeconfig, self.settings.context
        if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            configuration = Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return ApiClient(configuration)
        # With no file given, kubernetes-asyncio reads $KUBECONFIG, then ~/.kube/config.
        file = str(kubeconfig) if kubeconfig is not None else None
        client: ApiClient = await config.new_client_from_config(config_file=file, context=context)
        return client

    async def apps(self) -> AppsV1Api:
        from kubernetes_asyncio.client import AppsV1Api  # noqa: PLC0415 (on first use)

        return AppsV1Api(await self.api())

    async def core(self) -> CoreV1Api:
        from kubernetes_asyncio.client import CoreV1Api  # noqa: PLC0415 (on first use)

        return CoreV1Api(await self.api())

    async def autoscaling(self) -> AutoscalingV2Api:
        from kubernetes_asyncio.client import AutoscalingV2Api  # noqa: PLC0415 (on first use)

        return AutoscalingV2Api(await self.api())

    @property
    def request_timeout(self) -> float:
        return self.settings.request_timeout.total_seconds()

    async def as_dict(self, obj: Any) -> dict[str, Any]:
        """The API object as the server's JSON (camelCase keys), so decisions work on plain data."""
        data: dict[str, Any] = (await self.api()).sanitize_for_serialization(obj)
        return data

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None
