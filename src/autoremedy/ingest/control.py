"""People steering automation through the API: approve or deny a held run, pause and resume, close the breaker,
see the status. A thin transport over `autoremedy.control.service.ControlService`, which holds every rule.

The audit log records the credential's principal (`token:<name>`...); a `by` in the body is the caller's claim,
kept as a note in the reason, never as the actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoremedy.control.service import Forbidden, UnknownRule, UnknownRun
from autoremedy.ingest.common import PRINCIPAL, SERVICES, compact_json, error_response, run_json
from autoremedy.store.base import NotAwaitingApproval

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(
        default=None, max_length=200, description="a note of who decides; the audit actor is the credential"
    )
    reason: str = Field(default="", max_length=2000)

    @field_validator("by", "reason", "rule", check_fields=False)
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        # Stored in the audit log and shown in Slack: no NUL (PostgreSQL refuses it) nor other control characters.
        if value is not None and any(not ch.isprintable() and ch not in "\n\t" for ch in value):
            raise ValueError("must not contain control characters")
        return value

    def note(self) -> str:
        """The reason as recorded, with the caller's `by` claim kept as a note."""
        claimed = f"by: {self.by} (as stated by the caller)" if self.by else ""
        return "; ".join(part for part in (self.reason, claimed) if part)


class PauseRequest(DecisionRequest):
    rule: str | None = Field(default=None, description="a rule's name; absent: all automation")


M = TypeVar("M", bound=DecisionRequest)


async def _body(request: web.Request, model: type[M]) -> M | web.Response:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return error_response(400, "invalid request body", fields=fields)


def _forbidden(exc: Forbidden) -> web.Response:
    return error_response(403, str(exc))


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, approved=True)


async def deny(request: web.Request) -> web.Response:
    return await _decide(request, approved=False)


async def _decide(request: web.Request, *, approved: bool) -> web.Response:
    body = await _body(request, DecisionRequest)
    if isinstance(body, web.Response):
        return body
    control = request.app[SERVICES].control
    decide = control.approve if approved else control.deny
    try:
        run = await decide(request[PRINCIPAL], request.match_info["run_id"], reason=body.note())
    except Forbidden as exc:
        return _forbidden(exc)
    except NotAwaitingApproval as exc:
        return error_response(409, str(exc))
    except UnknownRun as exc:
        return error_response(404, str(exc))
    return web.json_response(run_json(run), dumps=compact_json)


async def pause(request: web.Request) -> web.Response:
    body = await _body(request, PauseRequest)
    if isinstance(body, web.Response):
        return body
    try:
        await request.app[SERVICES].control.pause(request[PRINCIPAL], body.rule, reason=body.note())
    except Forbidden as exc:
        return _forbidden(exc)
    except UnknownRule as exc:
        return error_response(404, str(exc))
    return web.json_response({"paused": body.rule or "all"})


async def resume(request: web.Request) -> web.Response:
    body = await _body(request, PauseRequest)
    if isinstance(body, web.Response):
        return body
    try:
        removed = await request.app[SERVICES].control.resume(request[PRINCIPAL], body.rule)
    except Forbidden as exc:
        return _forbidden(exc)
    return web.json_response({"resumed": body.rule or "all", "was_paused": removed})


async def close_breaker(request: web.Request) -> web.Response:
    body = await _body(request, DecisionRequest)
    if isinstance(body, web.Response):
        return body
    try:
        was_open = await request.app[SERVICES].control.close_breaker(request[PRINCIPAL])
    except Forbidden as exc:
        return _forbidden(exc)
    return web.json_response({"closed": True, "was_open": was_open})


async def status(request: web.Request) -> web.Response:
    report = await request.app[SERVICES].control.status()
    return web.json_response(report.to_json())
