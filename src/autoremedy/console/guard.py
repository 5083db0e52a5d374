"""Who may see and do what in the console: pages need a session with the read scope; state-changing requests
need this origin, a session and its CSRF token (403 otherwise). Rights beyond that (control, approvers) are the
control service's to check."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from autoremedy.console.deps import CONSOLE
from autoremedy.console.render import page
from autoremedy.console.sessions import CSRF_FIELD, SignedIn, csrf_matches, same_origin, signed_in
from autoremedy.control.credentials import Scope

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PageHandler = Callable[[web.Request, SignedIn], Awaitable[web.StreamResponse]]
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
ChangeHandler = Callable[[web.Request, SignedIn, Form], Awaitable[web.StreamResponse]]
LOGIN: Final = "/ui/login"


def forbidden(message: str) -> web.Response:
    return page("error.html", status=403, title="Forbidden", message=message, signed_in=None)


async def session_of(request: web.Request) -> SignedIn | None:
    """The request's console session, None when it has none (or it expired, or its credential is gone)."""
    services = request.app[CONSOLE]
    return await signed_in(request, services.store, services.settings.server.auth, now=services.clock.now())


def reader(handler: PageHandler) -> Handler:
    """A page: signed in with the read scope, or off to the sign-in page (and back here afterwards)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        session = await session_of(request)
        if session is None:
            raise web.HTTPSeeOther(f"{LOGIN}?next={quote(request.path_qs, safe='')}")
        if not session.may(Scope.READ):
            return forbidden(f"{session.principal.name} lacks the scope `read` the console needs")
        return await handler(request, session)

    return guarded


def changer(handler: ChangeHandler) -> Handler:
    """A state-changing POST: from this origin, signed in, with the session's CSRF token."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            return forbidden("this request did not come from a page of this console (Origin header)")
        session = await session_of(request)
        if session is None:
            return forbidden("not signed in, or the session expired: sign in again")
        form = await request.post()
        token = form.get(CSRF_FIELD)
        if not csrf_matches(session, token if isinstance(token, str) else None):
            return forbidden("the form's CSRF token is missing or does not belong to this session: reload the page")
        return await handler(request, session, form)

    return guarded


def text_field(form: Form, name: str, *, limit: int) -> str:
    """A one-line form field as stored: control characters (a NUL would fail in PostgreSQL) become spaces."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value[: limit * 2]).strip()[:limit]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/runs"
