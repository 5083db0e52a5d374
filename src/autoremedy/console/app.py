"""The console as an aiohttp sub-application mounted at /ui on the daemon's server."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from aiohttp import web

from autoremedy.console import changes, live, pages
from autoremedy.console.deps import CONSOLE, STOPPING, ConsoleServices
from autoremedy.console.guard import changer, reader

PREFIX = "/ui"


def install(app: web.Application, services: ConsoleServices) -> None:
    """Serve the console at /ui/ when `server.ui.enabled` (the default)."""
    if not services.settings.server.ui.enabled:
        return
    app.add_subapp(PREFIX, build_console(services))
    app.router.add_get(PREFIX, pages.index)


def build_console(services: ConsoleServices) -> web.Application:
    console = web.Application()
    console[CONSOLE] = services
    console[STOPPING] = asyncio.Event()
    console.on_shutdown.append(_stop_streams)
    routes = console.router
    routes.add_get("/", pages.index)
    routes.add_get("/login", pages.login_form)
    routes.add_post("/login", changes.login)
    routes.add_post("/logout", changer(changes.logout))
    routes.add_get("/runs", reader(pages.runs_page))
    routes.add_get("/runs/{run_id}", reader(pages.run_page))
    routes.add_post("/runs/{run_id}/approve", changer(changes.approve))
    routes.add_post("/runs/{run_id}/deny", changer(changes.deny))
    routes.add_get("/alerts", reader(pages.alerts_page))
    routes.add_get("/alerts/{fingerprint}", reader(pages.alert_page))
    routes.add_get("/approvals", reader(pages.approvals_page))
    routes.add_get("/guardrails", reader(pages.guardrails_page))
    routes.add_post("/pause", changer(changes.pause))
    routes.add_post("/resume", changer(changes.resume))
    routes.add_post("/breaker/close", changer(changes.close_breaker))
    routes.add_get("/live/runs", reader(live.runs_stream))
    routes.add_get("/live/runs/{run_id}", reader(live.run_stream))
    routes.add_get("/live/approvals", reader(live.approvals_stream))
    routes.add_static("/static", _static_dir())
    return console


def _static_dir() -> Path:
    return Path(str(resources.files("autoremedy.console").joinpath("static")))


async def _stop_streams(console: web.Application) -> None:
    console[STOPPING].set()
