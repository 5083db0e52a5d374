"""Live updates over Server-Sent Events: the runs table, a run's timeline, the approvals and the status header,
re-rendered on the server and pushed when they change. The browser's EventSource reconnects by itself, and each
connection is authenticated like a page; a stream ends when its session expires or is signed out, or the server
stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

from aiohttp import web

from autoremedy.console import views
from autoremedy.console.deps import CONSOLE, STOPPING
from autoremedy.console.guard import session_of
from autoremedy.console.pages import context
from autoremedy.console.render import render
from autoremedy.console.sessions import SignedIn

INTERVAL_SECONDS: Final = 1.0
SESSION_CHECK_EVERY: Final = 5
KEEPALIVE_EVERY: Final = 15
LONGEST_STREAM: Final = timedelta(minutes=30)
Fragments = Callable[[], Awaitable[dict[str, str]]]


def event(name: str, html: str) -> bytes:
    """One SSE message; every line of the data gets its own `data:` prefix, as the format requires."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{lines}\n".encode()


async def runs_stream(request: web.Request, session: SignedIn) -> web.StreamResponse:
    try:
        chosen = views.run_filter(request.query)
    except views.BadFilter as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None

    shown: dict[str, Any] = {}

    async def fragments() -> dict[str, str]:
        found = await views.runs(request.app[CONSOLE], chosen)
        # Rendering a hundred rows costs more than reading them: render only when what they show changed.
        key = [(r.id, r.status, r.guardrail, r.finished_at, [s.outcome for s in r.steps]) for r in found]
        if shown.get("key") != key:
            shown.update(key=key, html=render("_runs_rows.html", runs=found))
        return {"runs": shown["html"], **await _header(request, session)}

    return await stream(request, session, fragments)


async def run_stream(request: web.Request, session: SignedIn) -> web.StreamResponse:
    services = request.app[CONSOLE]
    run_id = request.match_info["run_id"]

    async def fragments() -> dict[str, str]:
        run = await services.store.get_run(run_id)
        if run is None:
            return {}
        detail = await views.run_detail(services, run, session.principal)
        ctx = await context(request, session, "runs", detail=detail)
        return {"run": render("_run_live.html", **ctx), "header": render("_header.html", **ctx)}

    return await stream(request, session, fragments)


async def approvals_stream(request: web.Request, session: SignedIn) -> web.StreamResponse:
    async def fragments() -> dict[str, str]:
        held = await views.approvals(request.app[CONSOLE], session.principal)
        ctx = await context(request, session, "approvals", held=held)
        return {"held": render("_held.html", **ctx), "header": render("_header.html", **ctx)}

    return await stream(request, session, fragments)


async def _header(request: web.Request, session: SignedIn) -> dict[str, str]:
    services = request.app[CONSOLE]
    return {"header": render("_header.html", header=await views.header(services, services.clock.now()))}


async def stream(request: web.Request, session: SignedIn, fragments: Fragments) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    stopping = request.app[STOPPING]
    clock = request.app[CONSOLE].clock
    ends = min(session.expires_at, clock.now() + LONGEST_STREAM)
    sent: dict[str, str] = {}
    ticks = 0
    try:
        while not stopping.is_set() and clock.now() < ends and _connected(request):
            if ticks and ticks % SESSION_CHECK_EVERY == 0 and not await _still_signed_in(request):
                break  # signed out elsewhere: the reconnect lands on the sign-in check
            await _push_changes(response, await fragments(), sent, keepalive=ticks % KEEPALIVE_EVERY == 0)
            ticks += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=INTERVAL_SECONDS)
    except ConnectionResetError:
        pass  # the browser went away
    return response


async def _push_changes(
    response: web.StreamResponse, fragments: dict[str, str], sent: dict[str, str], *, keepalive: bool
) -> None:
    for name, html in fragments.items():
        if sent.get(name) != html:
            await response.write(event(name, html))
            sent[name] = html
    if keepalive:  # a comment line: keeps proxies from timing the stream out, and finds a closed connection
        await response.write(b": keepalive\n\n")


def _connected(request: web.Request) -> bool:
    """False once the browser went away (a page left, a tab closed): the stream stops within a tick instead of
    rendering and reading the store every second until a keep-alive write finds the connection closed."""
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def _still_signed_in(request: web.Request) -> bool:
    return await session_of(request) is not None
