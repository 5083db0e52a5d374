"""The console's pages (GET): runs, a run, alerts and why, approvals, guardrails, and sign-in."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from autoremedy.console import views
from autoremedy.console.deps import CONSOLE
from autoremedy.console.guard import safe_next, session_of
from autoremedy.console.render import page
from autoremedy.console.sessions import CSRF_FIELD, SignedIn
from autoremedy.control.credentials import Scope
from autoremedy.models.runs import RunStatus

NAV: Final = (
    ("runs", "/ui/runs", "Runs"),
    ("alerts", "/ui/alerts", "Alerts"),
    ("approvals", "/ui/approvals", "Approvals"),
    ("guardrails", "/ui/guardrails", "Guardrails"),
)


async def context(request: web.Request, session: SignedIn, active: str, **extra: Any) -> dict[str, Any]:
    services = request.app[CONSOLE]
    return {
        "nav": NAV,
        "active": active,
        "signed_in": session,
        "may_control": session.may(Scope.CONTROL),
        "csrf_field": CSRF_FIELD,
        "header": await views.header(services, services.clock.now()),
        "statuses": [status.value for status in RunStatus],
        **extra,
    }


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/ui/runs")


async def login_form(request: web.Request) -> web.StreamResponse:
    target = safe_next(request.query.get("next"))
    if await session_of(request) is not None:
        raise web.HTTPSeeOther(target)
    return page("login.html", title="Sign in", next=target, problem=None, signed_in=None)


async def runs_page(request: web.Request, session: SignedIn) -> web.StreamResponse:
    try:
        chosen = views.run_filter(request.query)
    except views.BadFilter as exc:
        return page("error.html", status=400, title="Bad filter", message=str(exc), signed_in=session)
    found = await views.runs(request.app[CONSOLE], chosen)
    rules = sorted(request.app[CONSOLE].rules())
    ctx = await context(request, session, "runs", title="Runs", runs=found, chosen=chosen, rule_names=rules)
    return page("runs.html", **ctx)


async def run_page(request: web.Request, session: SignedIn) -> web.StreamResponse:
    services = request.app[CONSOLE]
    run = await services.store.get_run(request.match_info["run_id"])
    if run is None:
        return page("error.html", status=404, title="No such run", message="no run with this id", signed_in=session)
    detail = await views.run_detail(services, run, session.principal)
    return page("run.html", **await context(request, session, "runs", title=f"Run {run.id}", detail=detail))


async def alerts_page(request: web.Request, session: SignedIn) -> web.StreamResponse:
    rows = await views.alerts(request.app[CONSOLE])
    return page("alerts.html", **await context(request, session, "alerts", title="Alerts", rows=rows))


async def alert_page(request: web.Request, session: SignedIn) -> web.StreamResponse:
    fingerprint = request.match_info["fingerprint"]
    story = await views.alert_story(request.app[CONSOLE], fingerprint)
    ctx = await context(request, session, "alerts", title=f"Alert {fingerprint}", fingerprint=fingerprint, story=story)
    return page("alert.html", **ctx)


async def approvals_page(request: web.Request, session: SignedIn) -> web.StreamResponse:
    held = await views.approvals(request.app[CONSOLE], session.principal)
    return page("approvals.html", **await context(request, session, "approvals", title="Approvals", held=held))


async def guardrails_page(request: web.Request, session: SignedIn) -> web.StreamResponse:
    services = request.app[CONSOLE]
    now = services.clock.now()
    status = await services.control.status()
    ctx = await context(
        request,
        session,
        "guardrails",
        title="Guardrails",
        breaker=status.breaker,
        pauses=status.paused,
        limits=await views.limits_now(services, now),
        rule_names=sorted(services.rules()),
    )
    return page("guardrails.html", **ctx)
