"""People steering automation through the API: approve or deny a held run, pause and resume, close the breaker,
see the status. Every call is authenticated and lands in the audit log with who made it.

The functions here (decide_run, pause_scope, resume_scope, status_of) are also what chat commands call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoremedy.ingest.common import PRINCIPAL, SERVICES, Services, compact_json, error_response, run_json
from autoremedy.models.runs import Run
from autoremedy.store.base import NotAwaitingApproval

ALL = "all"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(default=None, max_length=200, description="who decides; default: the caller's identity")
    reason: str = Field(default="", max_length=2000)


class PauseRequest(DecisionRequest):
    rule: str | None = Field(default=None, description="a rule's name; absent: all automation")


def control_routes() -> list[tuple[str, str, Handler]]:
    return [
        ("POST", "/api/v1/runs/{run_id}/approve", approve),
        ("POST", "/api/v1/runs/{run_id}/deny", deny),
        ("POST", "/api/v1/pause", pause),
        ("POST", "/api/v1/resume", resume),
        ("POST", "/api/v1/breaker/close", close_breaker),
        ("GET", "/api/v1/status", status),
    ]


async def _body(request: web.Request, model: type[DecisionRequest]) -> DecisionRequest | web.Response:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return error_response(400, "invalid request body", fields=fields)


def _actor(request: web.Request, body: DecisionRequest) -> str:
    caller = str(request[PRINCIPAL])
    return f"{body.by} (via {caller})" if body.by else caller


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, approved=True)


async def deny(request: web.Request) -> web.Response:
    return await _decide(request, approved=False)


class UnknownRun(LookupError):
    """No run has this id."""


class UnknownRule(LookupError):
    """No loaded rule has this name."""


async def decide_run(services: Services, run_id: str, *, approved: bool, actor: str, reason: str) -> Run:
    """Approve or deny a held run: the one way the API and chat commands do it (raises NotAwaitingApproval)."""
    decide = services.store.approve if approved else services.store.deny
    run = await decide(run_id, actor=actor, reason=reason, now=_now())
    if run is None:
        raise UnknownRun(f"no run {run_id!r}")
    if approved:
        services.wake()
    else:
        services.metrics.runs.labels(run.status.value).inc()
    return run


async def pause_scope(services: Services, rule: str | None, *, actor: str, reason: str) -> str:
    scope = rule or ALL
    if rule is not None and rule not in services.rule_names():
        raise UnknownRule(f"no rule {rule!r}")
    await services.store.set_pause(scope, actor=actor, reason=reason, now=_now())
    return scope


async def resume_scope(services: Services, rule: str | None, *, actor: str) -> tuple[str, bool]:
    scope = rule or ALL
    return scope, await services.store.clear_pause(scope, actor=actor, now=_now())


async def status_of(services: Services) -> dict[str, Any]:
    store = services.store
    breaker = await store.breaker()
    pauses = await store.pauses()
    return {
        "instance": services.instance,
        "queue_depth": await store.pending_events(),
        "runs": await store.active_counts(),
        "breaker": {
            "open": breaker.open,
            "opened_at": breaker.opened_at.isoformat() if breaker.opened_at else None,
            "last_attempt_at": breaker.last_attempt_at.isoformat() if breaker.last_attempt_at else None,
        },
        "paused": [{"scope": p.scope, "by": p.actor, "reason": p.reason, "at": p.at.isoformat()} for p in pauses],
    }


async def _decide(request: web.Request, *, approved: bool) -> web.Response:
    body = await _body(request, DecisionRequest)
    if isinstance(body, web.Response):
        return body
    run_id = request.match_info["run_id"]
    try:
        run = await decide_run(
            request.app[SERVICES], run_id, approved=approved, actor=_actor(request, body), reason=body.reason
        )
    except NotAwaitingApproval as exc:
        return error_response(409, str(exc))
    except UnknownRun as exc:
        return error_response(404, str(exc))
    return web.json_response(run_json(run), dumps=compact_json)


async def pause(request: web.Request) -> web.Response:
    body = await _body(request, PauseRequest)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, PauseRequest)
    try:
        scope = await pause_scope(request.app[SERVICES], body.rule, actor=_actor(request, body), reason=body.reason)
    except UnknownRule as exc:
        return error_response(404, str(exc))
    return web.json_response({"paused": scope})


async def resume(request: web.Request) -> web.Response:
    body = await _body(request, PauseRequest)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, PauseRequest)
    scope, removed = await resume_scope(request.app[SERVICES], body.rule, actor=_actor(request, body))
    return web.json_response({"resumed": scope, "was_paused": removed})


async def close_breaker(request: web.Request) -> web.Response:
    body = await _body(request, DecisionRequest)
    if isinstance(body, web.Response):
        return body
    was_open = await request.app[SERVICES].store.close_breaker(actor=_actor(request, body), now=_now())
    return web.json_response({"closed": True, "was_open": was_open})


async def status(request: web.Request) -> web.Response:
    return web.json_response(await status_of(request.app[SERVICES]))


def _now() -> datetime:
    return datetime.now(UTC)
