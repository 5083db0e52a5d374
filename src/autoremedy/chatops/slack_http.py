"""Slack over HTTP: the `/autoremedy` slash command (`POST /slack/commands`) and the Approve/Deny buttons
(`POST /slack/interactions`).

Every request is checked before anything else: a form body (application/x-www-form-urlencoded, else 415), a UTF-8
body, a timestamp of ASCII digits within 5 minutes, Slack's v0 HMAC signature over the raw bytes with the signing
secret (computed here and compared in constant time: slack-sdk's verifier decodes the body and raises on what is
not UTF-8), and a signature never seen before (remembered in the store, so a replay is refused by every replica).
Anything else is 401, whatever bytes arrive. Commands are quick store calls and answer inline, well within Slack's
3 seconds.

With `chatops.slack.app_token`, Socket Mode (socketmode.py) carries the same payloads to the same `slash_command`
and `block_actions` instead, and these endpoints are not served.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Final
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError

from autoremedy.chatops.commands import Chatops
from autoremedy.chatops.context import Answer, Caller, ChatServices
from autoremedy.chatops.signature import signature_refusal
from autoremedy.chatops.socketmode import SocketMode
from autoremedy.chatops.text import secrets_of
from autoremedy.decide.text import scrub
from autoremedy.observability import get_logger
from autoremedy.slack.blocks import APPROVE_ACTION, DENY_ACTION, decided_blocks
from autoremedy.slack.web import SlackWebApi

log = get_logger("autoremedy.slack")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COMMANDS_PATH: Final = "/slack/commands"
INTERACTIONS_PATH: Final = "/slack/interactions"
FORM: Final = "application/x-www-form-urlencoded"
REPLAY_MEMORY: Final = timedelta(minutes=10)
"""Signatures are remembered longer than a timestamp stays acceptable (both ways: clocks drift)."""
OUTBOUND_TIMEOUT: Final = 2.0
"""chat.update and response_url calls made before answering a button press (Slack waits 3 seconds)."""
BUTTONS: Final = {APPROVE_ACTION: "approve", DENY_ACTION: "deny"}


class SlackChatops:
    """What the Slack handlers share: the signature check, the commands, and a client for chat.update."""

    def __init__(self, services: ChatServices) -> None:
        chatops = services.settings.chatops.slack
        slack = services.settings.notify.slack
        if chatops is None or slack is None:
            raise ValueError("chatops.slack needs notify.slack")
        self.services = services
        self.chatops = Chatops(services)
        secret = chatops.signing_secret
        self._signing_secret = secret.get_secret_value().encode() if secret is not None else None
        self.secrets = secrets_of(services.settings)
        self._slack = SlackWebApi(slack, OUTBOUND_TIMEOUT)
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        await self._slack.close()
        if self._http is not None:
            await self._http.close()

    async def verify(self, request: web.Request) -> dict[str, str] | web.Response:
        """The request's form fields, or the 4xx refusing it."""
        if request.content_type != FORM:
            return error_response(415, f"content type must be {FORM}")
        body = await request.read()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return error_response(401, "body is not UTF-8: not a request from Slack")
        refusal = await self._refusal(
            body, request.headers.get("X-Slack-Request-Timestamp", ""), request.headers.get("X-Slack-Signature", "")
        )
        if refusal is not None:
            return error_response(401, refusal)
        fields = parse_qs(text, keep_blank_values=True)
        return {key: values[0] for key, values in fields.items()}

    async def _refusal(self, body: bytes, timestamp: str, signature: str) -> str | None:
        now = self.services.clock.now()
        refusal = signature_refusal(self._signing_secret, body, timestamp, signature, now=now.timestamp())
        if refusal is not None:
            return refusal
        # Only a genuine signature is remembered: forged requests cannot fill the table.
        if not await self.services.store.remember_request(signature, now=now, keep=REPLAY_MEMORY):
            return "replayed request"
        return None

    async def update_message(self, channel: str, ts: str, blocks: list[dict[str, Any]], text: str) -> None:
        try:
            await self._slack.update(channel, ts, blocks, text)
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = scrub(str(exc), self.secrets)
            await log.awarning("chat.update failed", channel=channel, ts=ts, error=error)

    async def respond(self, response_url: str, answer: Answer) -> None:
        """An ephemeral answer to a button press, through its response_url."""
        if not response_url.startswith(("https://", "http://")):
            return
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=OUTBOUND_TIMEOUT))
        body = {"response_type": "ephemeral", "replace_original": False, "text": answer.text}
        try:
            async with self._http.post(response_url, json=body) as response:
                await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await log.awarning("response_url failed", error=scrub(str(exc), self.secrets))


SLACK = web.AppKey("slack_chatops", SlackChatops)


def slack_routes() -> list[tuple[str, str, Handler]]:
    return [("POST", COMMANDS_PATH, commands), ("POST", INTERACTIONS_PATH, interactions)]


def install(app: web.Application, services: ChatServices) -> None:
    """Serve the Slack endpoints when chatops.slack is configured; with an app token, run Socket Mode instead."""
    settings = services.settings.chatops.slack
    if settings is None:
        return
    slack = SlackChatops(services)
    app[SLACK] = slack
    if settings.app_token is not None:
        socket_mode = socket_mode_of(slack, settings.app_token)

        async def start_socket_mode(_: web.Application) -> None:
            await socket_mode.start()

        async def close_socket_mode(_: web.Application) -> None:
            await socket_mode.close()

        app.on_startup.append(start_socket_mode)
        app.on_cleanup.append(close_socket_mode)
    else:
        for method, path, handler in slack_routes():
            app.router.add_route(method, path, handler)

    async def close(_: web.Application) -> None:
        await slack.close()

    app.on_cleanup.append(close)


def socket_mode_of(slack: SlackChatops, app_token: SecretStr) -> SocketMode:
    notify = slack.services.settings.notify.slack
    base_url = notify.base_url if notify is not None else "https://slack.com/api/"

    async def remember(key: str) -> bool:
        return await slack.services.store.remember_request(key, now=slack.services.clock.now(), keep=REPLAY_MEMORY)

    async def on_interaction(payload: dict[str, Any]) -> None:
        await block_actions(slack, payload)

    async def on_command(fields: Mapping[str, Any]) -> dict[str, str] | None:
        return await slash_command(slack, fields)

    return SocketMode(
        app_token=app_token,
        base_url=base_url,
        on_command=on_command,
        on_interaction=on_interaction,
        remember=remember,
        on_failure=slack.services.metrics.chatops_failures.labels("socket_mode").inc,
    )


async def slash_command(slack: SlackChatops, fields: Mapping[str, Any]) -> dict[str, str] | None:
    """A slash command's answer (`response_type`, `text`), whatever carried it; None without a user."""
    caller = Caller.of(fields.get("user_id"), fields.get("channel_id"), fields.get("user_name"))
    if not caller.user:
        return None
    answer = await slack.chatops.command(caller, str(fields.get("text", "")))
    return {"response_type": "in_channel" if answer.public else "ephemeral", "text": answer.text}


async def block_actions(slack: SlackChatops, payload: dict[str, Any]) -> None:
    """An Approve or Deny press, whatever carried it: decided, then the message updated, or the presser told why
    not through response_url. Other interactions are ignored."""
    if payload.get("type") != "block_actions":
        return
    actions = payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    verb = BUTTONS.get(str(action.get("action_id", "")))
    user, container, message = _object(payload, "user"), _object(payload, "container"), _object(payload, "message")
    channel = str(container.get("channel_id") or _object(payload, "channel").get("id") or "")
    caller = Caller.of(user.get("id"), channel, user.get("username") or user.get("name"))
    if verb is None or not caller.user:
        return
    answer = await slack.chatops.button(caller, verb, str(action.get("value", "")))
    ts = str(container.get("message_ts") or message.get("ts") or "")
    if answer.run is not None and channel and ts:
        when = slack.services.clock.now().strftime("%Y-%m-%d %H:%M:%S UTC")
        said = f"{'✅ Approved' if verb == 'approve' else '⛔ Denied'} by <@{caller.user}> at {when}"
        found = message.get("blocks")
        blocks = [block for block in found if isinstance(block, dict)] if isinstance(found, list) else []
        text = f"{message.get('text') or ''} — {said}".strip(" —")
        await slack.update_message(channel, ts, decided_blocks(blocks, said), text)
    else:
        await slack.respond(str(payload.get("response_url") or ""), answer)


async def commands(request: web.Request) -> web.Response:
    slack = request.app[SLACK]
    fields = await slack.verify(request)
    if isinstance(fields, web.Response):
        return fields
    answer = await slash_command(slack, fields)
    return web.json_response(answer) if answer is not None else error_response(400, "user_id missing")


async def interactions(request: web.Request) -> web.Response:
    slack = request.app[SLACK]
    fields = await slack.verify(request)
    if isinstance(fields, web.Response):
        return fields
    try:
        payload = json.loads(fields.get("payload", ""))
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; nesting too deep a RecursionError
        return error_response(400, "payload must be JSON")
    if isinstance(payload, dict):
        await block_actions(slack, payload)
    return web.Response(status=200)  # Slack only needs the acknowledgement


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}
