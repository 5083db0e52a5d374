"""`http.request`: call a webhook or an API, templated from the alert."""

from __future__ import annotations

from typing import Any, Literal

import aiohttp
from pydantic import AnyHttpUrl, Field

from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec, Outcome

_BODY_EXCERPT = 1024


class HttpRequestInputs(ActionInputs):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: AnyHttpUrl
    headers: dict[str, str] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    expect_status: list[int] = Field(default_factory=list, description="accepted statuses; empty means any 2xx")


def classify(status: int, expected: list[int]) -> Outcome:
    """As Alertmanager's notifiers do: success as expected, 429 and 5xx retry, other answers give up."""
    if status in expected or (not expected and 200 <= status < 300):
        return Outcome.DONE
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.GIVE_UP


async def run_http_request(inputs: HttpRequestInputs, ctx: ActionContext) -> ActionResult:
    if ctx.dry_run:  # a remote endpoint has no rehearsal mode: report the request instead of sending it
        return ActionResult.done(f"dry run: would send {inputs.method} {inputs.url}")
    kwargs: dict[str, Any] = {"headers": inputs.headers}
    if inputs.json_ is not None:
        kwargs["json"] = inputs.json_
    elif inputs.body is not None:
        kwargs["data"] = inputs.body.encode()
    try:
        async with ctx.http.request(inputs.method, str(inputs.url), **kwargs) as response:
            excerpt = (await response.content.read(_BODY_EXCERPT)).decode("utf-8", "replace")
    except (aiohttp.ClientError, OSError) as exc:
        return ActionResult.retry(f"{inputs.method} {inputs.url}: {type(exc).__name__}: {exc}")
    message = f"{inputs.method} {inputs.url} answered {response.status}"
    return ActionResult(
        classify(response.status, inputs.expect_status), message, {"status": response.status, "body": excerpt}
    )


HTTP_REQUEST = ActionSpec(
    "http.request", HttpRequestInputs, run_http_request, "Send an HTTP request (a webhook, an API call).", dry_run=True
)
