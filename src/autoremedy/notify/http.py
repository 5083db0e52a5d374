"""The HTTP plumbing PagerDuty and Opsgenie share: one lazily opened session, a JSON POST that hands back what
classification needs, and connection failures as RETRY results."""

from __future__ import annotations

from typing import Any

import aiohttp

from autoremedy.models.notifications import SendResult
from autoremedy.notify.render import http_result, unreachable


class JsonPoster:
    def __init__(self, service: str, *, timeout: float, secrets: tuple[str, ...]) -> None:
        self._service = service
        self._timeout = timeout
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self, url: str, body: dict[str, Any], *, reference: str, headers: dict[str, str] | None = None
    ) -> SendResult:
        try:
            async with self._http().post(url, json=body, headers=headers or {}) as response:
                text = (await response.read()).decode("utf-8", "replace")
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return unreachable(self._service, exc, self._secrets, timeout=self._timeout)
        return http_result(self._service, status, text, retry_after, reference=reference, secrets=self._secrets)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session
