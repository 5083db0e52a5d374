"""Slack over Socket Mode, for clusters Slack cannot reach: autoremedy opens the WebSocket (slack-sdk's aiohttp
Socket Mode client, which reconnects by itself) and gets the same slash commands and button presses as the HTTP
endpoints, handled by the same functions.

The connection is authenticated by the app-level token, so no request signature is checked; an envelope Slack
redelivers (its acknowledgement was lost) is acknowledged but not acted on twice: its id is remembered in the store
like an HTTP request's signature.

One envelope never takes the client down: whatever it raises (the store unavailable, a payload nobody expected) is
logged with its traceback and counted (`autoremedy_chatops_failures_total{transport="socket_mode"}`), and the
client goes on with the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from pydantic import SecretStr
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from autoremedy.observability import get_logger

log = get_logger("autoremedy.socketmode")

OnCommand = Callable[[Mapping[str, Any]], Awaitable[dict[str, str] | None]]
OnInteraction = Callable[[dict[str, Any]], Awaitable[None]]
Remember = Callable[[str], Awaitable[bool]]
OnFailure = Callable[[], None]
FAILED: Final = {"response_type": "ephemeral", "text": "autoremedy could not do that now (see its log); retry later"}


class SocketMode:
    def __init__(
        self,
        *,
        app_token: SecretStr,
        base_url: str,
        on_command: OnCommand,
        on_interaction: OnInteraction,
        remember: Remember,
        on_failure: OnFailure,
        ping_interval: float = 5,
    ) -> None:
        self._app_token = app_token
        self._base_url = base_url
        self._on_command = on_command
        self._on_interaction = on_interaction
        self._remember = remember
        self._on_failure = on_failure
        self._ping_interval = ping_interval
        self._client: SocketModeClient | None = None
        self._connecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background: an unreachable Slack must not keep the daemon from starting."""
        web = AsyncWebClient(base_url=self._base_url, retry_handlers=[])
        client = SocketModeClient(
            app_token=self._app_token.get_secret_value(),
            web_client=web,
            auto_reconnect_enabled=True,
            ping_interval=self._ping_interval,
        )
        client.socket_mode_request_listeners.append(self._on_request)
        self._client = client
        self._connecting = asyncio.create_task(client.connect())  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connecting
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]

    async def _on_request(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        envelope = request.envelope_id
        try:
            await self._handle(client, request)
        except Exception:  # one envelope must not stop the others; slack-sdk would only log it
            self._on_failure()
            await log.aexception("socket mode envelope failed", envelope_id=envelope, type=request.type)

    async def _handle(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        envelope = request.envelope_id
        if not await self._remember(f"socket-mode:{envelope}"):
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope))
            return
        if request.type == "slash_commands":
            try:
                answer = await self._on_command(request.payload)
            except Exception:  # the caller still gets an answer; the error is logged and counted
                self._on_failure()
                await log.aexception("slash command failed", envelope_id=envelope)
                answer = FAILED
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope, payload=answer))
        elif request.type == "interactive":
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope))
            await self._on_interaction(request.payload)
        else:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope))
