"""Slack: a Block Kit message per trigger (chat.postMessage), the resolve as a reply in its thread.

A run awaiting approval gets Approve and Deny buttons (value: the run id); pressing one reaches chatops
(chatops/slack_http.py), which replaces the buttons with who decided and when (`slack.blocks.decided_blocks`,
chat.update).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError

from autoremedy.config.settings import SlackSettings
from autoremedy.decide.text import ellipsize, one_line, scrub, slack_escape, slack_escape_fit
from autoremedy.models.notifications import Notification, NotificationKind, SendOutcome, SendResult, Trigger
from autoremedy.notify.render import fit_lines, is_web_url, parse_retry_after, step_line, unreachable
from autoremedy.slack.blocks import (
    APPROVAL_BLOCK_ID,
    APPROVE_ACTION,
    CONTEXT_MAX,
    DENY_ACTION,
    Block,
    context_block,
)
from autoremedy.slack.web import SlackWebApi

HEADER_MAX: Final = 150
SECTION_MAX: Final = 3000
FALLBACK_MAX: Final = 3000
LABEL_VALUE_MAX: Final = 300
_RETRY_ERRORS: Final = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_LOST_THREAD_ERRORS: Final = frozenset({"thread_not_found", "message_not_found"})

METADATA_EVENT: Final = "autoremedy_escalation"


class SlackChannel:
    """Posts to `settings.channel` with the bot token; no slack-sdk retry handlers (the outbox retries)."""

    name: str = "slack"

    def __init__(self, settings: SlackSettings, request_timeout: float) -> None:
        self._api = SlackWebApi(settings, request_timeout)
        self._channel = settings.channel
        self._timeout = request_timeout

    async def send(self, notification: Notification) -> SendResult:
        try:
            if notification.kind is NotificationKind.RESOLVE:
                return await self._resolve(notification)
            text, client_id = fallback_text(notification), notification.client_id
            return await self._post(self._channel, trigger_blocks(notification), text, client_id=client_id)
        except SlackApiError as exc:
            return self._api_error(exc)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return unreachable("slack", exc, self._secrets, timeout=self._timeout)

    async def find_sent(self, client_id: str, *, since: datetime) -> str | None:
        """A trigger this bot posted with this client id (message metadata), via conversations.history (needs the
        channels:history scope and a channel id). Any failure answers None: then the message is sent again."""
        try:
            response = await self._api.client().conversations_history(
                channel=self._channel, oldest=f"{since.timestamp() - 60:.6f}", include_all_metadata=True, limit=200
            )
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError):
            return None
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            if (metadata.get("event_payload") or {}).get("client_id") == client_id:
                return f"{response.get('channel') or self._channel}:{message['ts']}"
        return None

    async def close(self) -> None:
        await self._api.close()

    # -- internals ---------------------------------------------------------------------------------------

    @property
    def _secrets(self) -> tuple[str]:
        return self._api.secrets

    async def _post(
        self, channel: str, blocks: list[Block], text: str, thread_ts: str | None = None, client_id: str | None = None
    ) -> SendResult:
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        if client_id:  # found again by find_sent if this call's outcome is lost to a crash
            extra["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"client_id": client_id}}
        response = await self._api.client().chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False, **extra
        )
        return SendResult(SendOutcome.SENT, reference=f"{response['channel']}:{response['ts']}")

    async def _resolve(self, notification: Notification) -> SendResult:
        channel, _, ts = (notification.thread_reference or "").rpartition(":")
        if not (channel and ts):
            return await self._post(self._channel, resolve_blocks(notification), fallback_text(notification))
        try:
            return await self._post(
                channel, resolve_blocks(notification, in_thread=True), fallback_text(notification), thread_ts=ts
            )
        except SlackApiError as exc:
            if _error_code(exc) not in _LOST_THREAD_ERRORS:
                raise
        # The trigger's message is gone (deleted, or the channel was switched): say it in the channel instead.
        return await self._post(self._channel, resolve_blocks(notification), fallback_text(notification))

    def _api_error(self, exc: SlackApiError) -> SendResult:
        status = _status_of(exc)
        code = _error_code(exc)
        said = code or f"HTTP {status}"
        error = scrub(f"slack: {said}" + (_block_errors(exc) if code == "invalid_blocks" else ""), self._secrets)
        if status == 429 or code in {"ratelimited", "rate_limited"}:
            retry_after = parse_retry_after(_header(exc, "Retry-After"))
            return SendResult(SendOutcome.RETRY, error=error, retry_after=retry_after)
        if (status is not None and status >= 500) or code in _RETRY_ERRORS:
            return SendResult(SendOutcome.RETRY, error=error)
        return SendResult(SendOutcome.GIVE_UP, error=error)


# -- the answer of a failed call ---------------------------------------------------------------------------


def _status_of(exc: SlackApiError) -> int | None:
    response = exc.response
    # An AsyncSlackResponse has status_code; a body slack-sdk could not parse leaves an aiohttp response.
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return status if isinstance(status, int) else None


def _data_of(exc: SlackApiError) -> Mapping[str, Any]:
    data = getattr(exc.response, "data", None)
    return data if isinstance(data, Mapping) else {}


def _error_code(exc: SlackApiError) -> str | None:
    error = _data_of(exc).get("error")
    return error if isinstance(error, str) and error else None


def _block_errors(exc: SlackApiError) -> str:
    errors = _data_of(exc).get("errors")
    if isinstance(errors, list) and errors:
        return ": " + ellipsize("; ".join(str(e) for e in errors), 500)
    return ""


def _header(exc: SlackApiError, name: str) -> str | None:
    headers = getattr(exc.response, "headers", None)
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


# -- rendering ----------------------------------------------------------------------------------------------


def _header_block(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": ellipsize(one_line(text), HEADER_MAX) or "-"}}


def _section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def _link(url: str, label: str) -> str | None:
    """A mrkdwn link, only to an http(s) URL: `javascript:`, `slack://` or `file:` from an annotation is dropped."""
    if not is_web_url(url):
        return None
    target = slack_escape(url.strip()).replace("|", "%7C")
    text = f"<{target}|{label}>"
    return text if len(text) <= CONTEXT_MAX else None


def _labels_block(labels: Mapping[str, str]) -> Block | None:
    if not labels:
        return None
    lines = [
        f"*{slack_escape(key)}*: {slack_escape_fit(one_line(value), LABEL_VALUE_MAX)}" for key, value in labels.items()
    ]
    return _section(fit_lines(["*Labels*", *lines], SECTION_MAX, noun="labels"))


def _steps_block(notification: Notification) -> Block | None:
    if not notification.steps:
        return None
    lines = [slack_escape(step_line(step)) for step in notification.steps]
    return _section(fit_lines(["*Steps*", *lines], SECTION_MAX, noun="steps"))


def _links_block(notification: Notification) -> Block | None:
    links = [
        link
        for link in (_link(notification.generator_url, "Prometheus"), _link(notification.runbook_url, "Runbook"))
        if link is not None
    ]
    return context_block(*links) if links else None


def _meta_block(notification: Notification) -> Block:
    parts = [f"run `{notification.run_id}`"] if notification.run_id else []
    parts += [
        f"rule `{notification.rule}`",
        f"fingerprint `{notification.fingerprint}`",
        f"trigger `{notification.trigger}`",
    ]
    return context_block(slack_escape_fit(" · ".join(parts), CONTEXT_MAX))


def trigger_blocks(notification: Notification) -> list[Block]:
    """Header, summary, labels, links, steps and a context with run id, rule and fingerprint."""
    blocks = [
        _header_block(notification.title),
        _section(slack_escape_fit(notification.summary or notification.title, SECTION_MAX)),
        _labels_block(notification.labels),
        _links_block(notification),
        _steps_block(notification),
        _meta_block(notification),
        _approval_block(notification),
    ]
    return [block for block in blocks if block is not None]


def _approval_block(notification: Notification) -> Block | None:
    if notification.trigger != Trigger.APPROVAL_REQUESTED or not notification.run_id:
        return None

    def button(action_id: str, label: str, style: str) -> Block:
        text = {"type": "plain_text", "text": label}
        return {"type": "button", "action_id": action_id, "text": text, "style": style, "value": notification.run_id}

    return {
        "type": "actions",
        "block_id": APPROVAL_BLOCK_ID,
        "elements": [button(APPROVE_ACTION, "Approve", "primary"), button(DENY_ACTION, "Deny", "danger")],
    }


def resolve_blocks(notification: Notification, *, in_thread: bool = False) -> list[Block]:
    """A thread reply says it is resolved and why; in the channel it also carries the title."""
    said = slack_escape_fit(notification.summary or notification.title, SECTION_MAX - 20)
    blocks = [] if in_thread else [_header_block(notification.title)]
    return [*blocks, _section(f"✅ *Resolved:* {said}"), _meta_block(notification)]


def fallback_text(notification: Notification) -> str:
    """The notification text (push notifications, screen readers, clients without blocks)."""
    prefix = "Resolved: " if notification.kind is NotificationKind.RESOLVE else ""
    summary = f" — {notification.summary}" if notification.summary else ""
    return slack_escape_fit(one_line(f"{prefix}{notification.title}{summary}"), FALLBACK_MAX)
