"""What the console changes (POST): sign in and out, approve and deny, pause and resume, close the breaker. The
last five go through the control service, which checks the scope and the approvers and audits the principal."""

from __future__ import annotations

import math
from typing import Final

from aiohttp import web

from autoremedy.console.deps import CONSOLE
from autoremedy.console.guard import Form, forbidden, safe_next, text_field
from autoremedy.console.render import page
from autoremedy.console.sessions import (
    SignedIn,
    clear_cookie,
    same_origin,
    set_cookie,
    start_session,
)
from autoremedy.control.credentials import Scope, authenticate_login
from autoremedy.control.service import Forbidden, UnknownRule, UnknownRun
from autoremedy.decide.redact import redact_text
from autoremedy.store.base import NotAwaitingApproval

REASON_MAX: Final = 2000
SECRET_MAX: Final = 4096


async def login(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        return forbidden("this sign-in did not come from the console's own page (Origin header)")
    services = request.app[CONSOLE]
    form = await request.post()
    user = text_field(form, "user", limit=200) or None
    secret = form.get("secret")
    target = safe_next(text_field(form, "next", limit=2000))
    client, now = request.remote or "unknown", services.clock.now()
    wait = services.sign_ins.retry_after(client, now)
    if wait is not None:
        problem = f"Too many failed sign-ins from {client}: try again in {math.ceil(wait)} seconds."
        response = page("login.html", status=429, title="Sign in", next=target, problem=problem, signed_in=None)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    principal = None
    if isinstance(secret, str) and 0 < len(secret) <= SECRET_MAX:
        principal = authenticate_login(user, secret, services.settings.server.auth)
    if principal is None:
        services.sign_ins.failed(client, now)
        problem = "Sign-in failed: unknown token, or wrong user or password."
        return page("login.html", status=401, title="Sign in", next=target, problem=problem, signed_in=None)
    if not principal.has(Scope.READ):
        problem = f"{principal.name} may only send alerts (scope ingest): the console needs the scope read."
        return page("login.html", status=403, title="Sign in", next=target, problem=problem, signed_in=None)
    value = await start_session(services.store, principal, services.settings.server.ui, now=services.clock.now())
    response = see_other(target)
    set_cookie(response, request, value, services.settings.server.ui)
    return response


async def logout(request: web.Request, session: SignedIn, form: Form) -> web.StreamResponse:
    services = request.app[CONSOLE]
    await services.store.end_console_session(session.key_hash)
    response = see_other("/ui/login")
    clear_cookie(response, request, services.settings.server.ui)
    return response


async def approve(request: web.Request, session: SignedIn, form: Form) -> web.StreamResponse:
    return await _decide(request, session, form, approved=True)


async def deny(request: web.Request, session: SignedIn, form: Form) -> web.StreamResponse:
    return await _decide(request, session, form, approved=False)


async def _decide(request: web.Request, session: SignedIn, form: Form, *, approved: bool) -> web.StreamResponse:
    control = request.app[CONSOLE].control
    run_id = request.match_info["run_id"]
    decide = control.approve if approved else control.deny
    try:
        await decide(session.principal, run_id, reason=_reason(form))
    except Forbidden as exc:
        return forbidden(str(exc))
    except UnknownRun as exc:
        return _problem(404, "No such run", str(exc), session)
    except NotAwaitingApproval as exc:
        return _problem(409, "Already decided", str(exc), session)
    raise web.HTTPSeeOther(f"/ui/runs/{run_id}")


async def pause(request: web.Request, session: SignedIn, form: Form) -> web.StreamResponse:
    rule = text_field(form, "rule", limit=200) or None
    try:
        await request.app[CONSOLE].control.pause(session.principal, rule, reason=_reason(form))
    except Forbidden as exc:
        return forbidden(str(exc))
    except UnknownRule as exc:
        return _problem(404, "No such rule", str(exc), session)
    raise web.HTTPSeeOther("/ui/guardrails")


async def resume(request: web.Request, session: SignedIn, form: Form) -> web.StreamResponse:
    try:
        await request.app[CONSOLE].control.resume(session.principal, text_field(form, "rule", limit=200) or None)
    except Forbidden as exc:
        return forbidden(str(exc))
    raise web.HTTPSeeOther("/ui/guardrails")


async def close_breaker(request: web.Request, session: SignedIn, form: Form) -> web.StreamResponse:
    try:
        await request.app[CONSOLE].control.close_breaker(session.principal)
    except Forbidden as exc:
        return forbidden(str(exc))
    raise web.HTTPSeeOther("/ui/guardrails")


def _reason(form: Form) -> str:
    """A reason as the audit log keeps it: a secret pasted into it by mistake is masked."""
    return redact_text(text_field(form, "reason", limit=REASON_MAX))


def _problem(status: int, title: str, message: str, session: SignedIn) -> web.Response:
    return page("error.html", status=status, title=title, message=message, signed_in=session)


def see_other(location: str) -> web.Response:
    """A redirect after a POST that also sets or clears the cookie (an HTTPException cannot carry one)."""
    return web.Response(status=303, headers={"Location": location})
