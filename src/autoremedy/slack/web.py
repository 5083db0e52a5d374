"""One Slack Web API client per user of it, on one aiohttp session, built on first use inside the running loop."""

from __future__ import annotations

import math

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from autoremedy.config.settings import SlackSettings


class SlackWebApi:
    """The bot token's Web API client; no slack-sdk retry handlers (callers decide whether to retry)."""

    def __init__(self, settings: SlackSettings, request_timeout: float) -> None:
        if settings.token is None:
            raise ValueError("slack: no token configured")
        self.token = settings.token
        self.channel = settings.channel
        self._base_url = settings.base_url
        self.timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None

    @property
    def secrets(self) -> tuple[str]:
        return (self.token.get_secret_value(),)

    def client(self) -> AsyncWebClient:
        if self._client is None or self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._client = AsyncWebClient(
                token=self.token.get_secret_value(),
                base_url=self._base_url,
                timeout=max(1, math.ceil(self.timeout)),
                session=self._session,
                retry_handlers=[],
            )
        return self._client

    async def update(self, channel: str, ts: str, blocks: list[dict[str, object]], text: str) -> None:
        """chat.update of a message this bot posted (raises SlackApiError or a connection error)."""
        await self.client().chat_update(channel=channel, ts=ts, blocks=blocks, text=text)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = self._client = None
