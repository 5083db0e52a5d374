"""`http.request`: call a webhook or an API, templated from the alert.

Before this runs, planning has refused a URL whose host the alert chose (decide/urls.py). Here, before the call,
the host's addresses are resolved and refused when one is link-local or a metadata address (a name such as
`169.254.169.254.nip.io`, or `2852039166`, is not caught by looking at the text). Redirects are not followed
unless the step asks, and then only to the same scheme, host and port. Every request carries an
`Idempotency-Key` (the run id and the step index) so a receiver can drop a repeat after a crash.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
from pydantic import AnyHttpUrl, Field

from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec, Outcome
from autoremedy.config.settings import HttpSettings
from autoremedy.decide.redact import redact_text
from autoremedy.decide.templating import ESCAPE_URL
from autoremedy.decide.urls import is_ip_literal, is_link_local, same_origin
from autoremedy.models.flags import StrictFlag

_BODY_EXCERPT = 1024
_MAX_REDIRECTS = 5
IDEMPOTENCY_HEADER = "Idempotency-Key"


class HttpRequestInputs(ActionInputs):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: AnyHttpUrl = Field(
        json_schema_extra={"escape": ESCAPE_URL},
        description="its host must be written in the template, or match http.allowed_hosts; `| urlencode` values",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    expect_status: list[int] = Field(default_factory=list, description="accepted statuses; empty means any 2xx")
    allow_redirects: StrictFlag = Field(default=False, description="follow redirects to the same host (at most 5)")
    idempotency_key: StrictFlag = Field(
        default=True, description="send `Idempotency-Key: <run id>.<step index>` unless headers set one"
    )


def classify(status: int, expected: list[int]) -> Outcome:
    """As Alertmanager's notifiers do: success as expected, 429 and 5xx retry, other answers give up."""
    if status in expected or (not expected and 200 <= status < 300):
        return Outcome.DONE
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.GIVE_UP


def request_headers(inputs: HttpRequestInputs, ctx: ActionContext) -> dict[str, str]:
    """The step's headers, with an Idempotency-Key unless the step sets its own or turns it off."""
    if not inputs.idempotency_key or any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in inputs.headers):
        return dict(inputs.headers)
    return {IDEMPOTENCY_HEADER: ctx.operation_id, **inputs.headers}


async def resolved_link_local(url: str) -> str | None:
    """A link-local/metadata address the URL's host resolves to, or None (unresolvable names fail later)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_link_local(host):
        return host
    if is_ip_literal(host):  # nothing to resolve: what it is was just answered
        return None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 0, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return next((str(info[4][0]) for info in infos if is_link_local(str(info[4][0]))), None)


class HttpActions:
    def __init__(self, settings: HttpSettings) -> None:
        self._settings = settings

    def specs(self) -> list[ActionSpec]:
        return [
            ActionSpec(
                "http.request",
                HttpRequestInputs,
                self.request,
                "Send an HTTP request (a webhook, an API call).",
                dry_run=True,
            )
        ]

    async def request(self, inputs: HttpRequestInputs, ctx: ActionContext) -> ActionResult:
        url = str(inputs.url)
        shown = redact_text(f"{inputs.method} {url}")
        if ctx.dry_run:  # a remote endpoint has no rehearsal mode: report the request instead of sending it
            return ActionResult.done(f"dry run: would send {shown}")
        if not self._settings.allow_link_local:
            address = await resolved_link_local(url)
            if address is not None:
                return ActionResult.give_up(
                    f"{shown}: the host resolves to {address}, a link-local or metadata address: refused "
                    "(http.allow_link_local)"
                )
        try:
            return await self._send(inputs, ctx, url, shown)
        except (aiohttp.ClientError, OSError) as exc:
            return ActionResult.retry(redact_text(f"{shown}: {type(exc).__name__}: {exc}"))

    async def _send(self, inputs: HttpRequestInputs, ctx: ActionContext, url: str, shown: str) -> ActionResult:
        kwargs: dict[str, Any] = {"headers": request_headers(inputs, ctx), "allow_redirects": False}
        if inputs.json_ is not None:
            kwargs["json"] = inputs.json_
        elif inputs.body is not None:
            kwargs["data"] = inputs.body.encode()
        for _ in range(_MAX_REDIRECTS + 1):
            async with ctx.http.request(inputs.method, url, **kwargs) as response:
                excerpt = (await response.content.read(_BODY_EXCERPT)).decode("utf-8", "replace")
                location = response.headers.get("Location")
            if not (inputs.allow_redirects and 300 <= response.status < 400 and location):
                break
            target = urljoin(url, location)
            if not same_origin(url, target):
                return ActionResult.give_up(
                    redact_text(f"{shown} redirected to {target}, another host: not followed"),
                    status=response.status,
                )
            url = target
        message = redact_text(f"{inputs.method} {url} answered {response.status}")
        return ActionResult(
            classify(response.status, inputs.expect_status), message, {"status": response.status, "body": excerpt}
        )


HTTP_REQUEST = HttpActions(HttpSettings()).specs()[0]
"""With the default settings (nothing allowed beyond the hosts playbooks write), for tests and tools."""
