"""HTTP: the Alertmanager webhook, the runs API, Slack chatops (chatops/slack_http.py), health and metrics.

The webhook handler only authenticates, validates and stores; matching and everything after happen in the worker.
Alertmanager retries 5xx and drops 4xx, so: bad input is a 4xx that names the field, our own failure a 503.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoremedy.chatops.context import ChatServices
from autoremedy.chatops.slack_http import install as install_slack
from autoremedy.console import install as install_console
from autoremedy.control.credentials import Scope, authenticate
from autoremedy.ingest import control
from autoremedy.ingest.common import PRINCIPAL, SERVICES, Services, compact_json, error_response, run_json
from autoremedy.ingest.offload import collector_paused, events_from_body, is_big
from autoremedy.models.events import NewEvent
from autoremedy.models.runs import RunStatus
from autoremedy.models.webhook import FieldProblem, InvalidWebhook, ParsedWebhook
from autoremedy.observability import get_logger
from autoremedy.store.base import InsertOutcome, RefusedEvents, StoreUnavailable

log = get_logger("autoremedy.http")
RETRY_AFTER_SECONDS = "5"
MAX_LIST_LIMIT = 1000
MAX_WAITING_BATCHES = 1000
JSON_CHARSETS = frozenset({"utf-8", "utf8"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(services: Services) -> web.Application:
    server = services.settings.server
    anonymous = not server.auth.has_credentials and server.is_loopback()
    middlewares = [_errors, _local_host] if anonymous else [_errors]
    app = web.Application(client_max_size=server.max_body_bytes, middlewares=middlewares)
    app[SERVICES] = services
    for method, path, handler, scope in api_routes(protect_metrics=services.settings.server.auth.protect_metrics):
        app.router.add_route(method, path, handler if scope is None else _authenticated(handler, scope))
    install_slack(app, chat_services(services))  # signed by Slack, not the API's credentials
    install_console(app, services)  # /ui/: its own sign-in and sessions (autoremedy.console)
    return app


def api_routes(*, protect_metrics: bool = False) -> list[tuple[str, str, Handler, Scope | None]]:
    """Every route with the scope its caller needs (None: open to anyone)."""
    return [
        ("POST", "/api/v1/alerts", receive_alerts, Scope.INGEST),
        ("GET", "/api/v1/runs", list_runs, Scope.READ),
        ("GET", "/api/v1/runs/{run_id}", get_run, Scope.READ),
        ("GET", "/api/v1/status", control.status, Scope.READ),
        ("POST", "/api/v1/runs/{run_id}/approve", control.approve, Scope.CONTROL),
        ("POST", "/api/v1/runs/{run_id}/deny", control.deny, Scope.CONTROL),
        ("POST", "/api/v1/pause", control.pause, Scope.CONTROL),
        ("POST", "/api/v1/resume", control.resume, Scope.CONTROL),
        ("POST", "/api/v1/breaker/close", control.close_breaker, Scope.CONTROL),
        ("GET", "/healthz", healthz, None),
        ("GET", "/readyz", readyz, None),
        ("GET", "/metrics", metrics, Scope.READ if protect_metrics else None),
    ]


def chat_services(services: Services) -> ChatServices:
    return ChatServices(
        settings=services.settings,
        store=services.store,
        control=services.control,
        committer=services.committer,
        metrics=services.metrics,
        match_rules=services.match_rules,
        clock=services.clock,
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"body larger than server.max_body_bytes ({exc.text})")
    except StoreUnavailable as exc:
        await log.aerror("store unavailable", error=str(exc), path=request.path)
        return _unavailable()
    except web.HTTPException:
        raise  # aiohttp's own answers (404, 405, ...) are responses, not failures
    except Exception as exc:
        # Our own failure: the client learns only an id to quote; the operator finds the traceback under it.
        request_id = uuid.uuid4().hex
        await log.aerror(
            "request failed", request_id=request_id, method=request.method, path=request.path, exc_info=exc
        )
        return error_response(500, "internal error", request_id=request_id)


_REBINDABLE: Final = ("/api/", "/ui")


@web.middleware
async def _local_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Without credentials every caller on this machine has every scope. A web page can reach a loopback port too,
    through DNS rebinding (its own name made to resolve to 127.0.0.1, so the browser counts it as same-origin):
    its requests carry that name as Host. So the API and the console answer only requests to an IP or localhost."""
    if request.path.startswith(_REBINDABLE) and not is_local_host(request.host):
        return error_response(
            403, "without credentials only requests to an IP address or localhost are served: configure server.auth"
        )
    return await handler(request)


def is_local_host(host: str) -> bool:
    """A Host header naming an IP address or localhost (names a DNS server answers for are refused)."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def too_many_failures(client: str, wait: float) -> web.Response:
    """429 for an address over server.auth.max_failures (control/limiter.py)."""
    seconds = math.ceil(wait)
    response = error_response(429, f"too many failed sign-ins from {client}: retry in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    return response


def _unavailable(message: str = "store unavailable, retry later") -> web.Response:
    response = error_response(503, message)
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def _authenticated(handler: Handler, scope: Scope) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        client, now = request.remote or "unknown", services.clock.now()
        wait = services.sign_ins.retry_after(client, now)
        if wait is not None:
            return too_many_failures(client, wait)
        principal = authenticate(request.headers.get("Authorization"), services.settings.server.auth)
        if principal is None:
            services.sign_ins.failed(client, now)
            response = error_response(401, "missing or invalid credentials")
            response.headers["WWW-Authenticate"] = 'Bearer realm="autoremedy"'
            return response
        if not principal.has(scope):
            return error_response(403, f"this credential ({principal.name}) lacks the scope `{scope}`", scope=scope)
        request[PRINCIPAL] = principal
        return await handler(request)

    return guarded


async def receive_alerts(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    started = time.perf_counter()
    response = await _receive(request, services)
    services.metrics.webhook_duration.observe(time.perf_counter() - started)
    services.metrics.webhook_responses.labels(str(response.status)).inc()
    return response


async def _receive(request: web.Request, services: Services) -> web.Response:
    refusal = _refusal_before_reading(request, services)
    if refusal is not None:
        return refusal
    body = await _body(request, services)
    if isinstance(body, web.Response):
        return body
    if not is_big(body):
        return await _parsed_and_stored(body, services)
    with collector_paused():  # see ingest/offload.py
        return await _parsed_and_stored(body, services)


async def _parsed_and_stored(body: bytes, services: Services) -> web.Response:
    try:
        events, parsed = await events_from_body(body, services.settings.server.limits)
    except InvalidWebhook as exc:
        return error_response(400, "invalid Alertmanager webhook payload", fields=_fields(exc.problems))
    if not events and parsed.problems:
        return error_response(400, "invalid Alertmanager webhook payload", fields=_fields(parsed.problems))
    outcomes = await _stored(events, parsed, services)
    if isinstance(outcomes, web.Response):
        return outcomes
    duplicates = sum(outcome.duplicate for outcome in outcomes)
    for status, count in Counter(event.status for event in events).items():
        services.metrics.alerts_received.labels(status).inc(count)
    services.metrics.alert_duplicates.inc(duplicates)
    counts = {"stored": len(events) - duplicates, "duplicates": duplicates}
    if parsed.problems:  # Alertmanager drops the notification; its valid alerts are stored all the same
        fields = _fields(parsed.problems)
        return error_response(400, "invalid alerts refused; the others were stored", fields=fields, **counts)
    return web.json_response(counts)


def _fields(problems: list[FieldProblem]) -> list[dict[str, str]]:
    return [{"field": p.field, "message": p.message} for p in problems]


async def _stored(
    events: list[NewEvent], parsed: ParsedWebhook, services: Services
) -> list[InsertOutcome] | web.Response:
    try:
        return await services.committer.submit(events)
    except StoreUnavailable as exc:
        await log.aerror("webhook not stored", error=str(exc), alerts=len(events))
        return _unavailable()
    except RefusedEvents as exc:  # the data's fault, not ours: a retry cannot succeed; the other alerts are stored
        await log.awarning("alerts refused by the store", refused=len(exc.refused), stored=exc.stored)
        refused = [FieldProblem(f"alerts.{parsed.positions[i]}", error) for i, error in exc.refused.items()]
        return error_response(
            400,
            "the store refused some alerts for their data; the others were stored",
            fields=_fields(parsed.problems + refused),
        )


async def _body(request: web.Request, services: Services) -> bytes | web.Response:
    """The whole body, or the answer to a client that cannot send one."""
    timeout = services.settings.server.body_timeout.total_seconds()
    try:
        if request.content.is_eof():  # all of it arrived with the headers (most webhooks): no timer to set
            return await request.read()
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        # A slow sender, or a compressed body cut short (aiohttp then waits for the rest forever): not ours to wait.
        response = error_response(408, f"body not received within server.body_timeout ({timeout:g}s)")
        response.force_close()
        return response
    except (web.RequestPayloadError, ConnectionError) as exc:
        # A Content-Encoding that does not decode, or a client gone before its body arrived: its fault, not ours.
        reason = getattr(exc.__cause__, "message", None) or str(exc)  # aiohttp's own words, without its prefix
        return error_response(400, f"the body could not be read: {' '.join(str(reason).split())}")


def _refusal_before_reading(request: web.Request, services: Services) -> web.Response | None:
    limit = services.settings.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return error_response(
            413, f"body of {request.content_length} bytes is larger than server.max_body_bytes ({limit})"
        )
    if not _is_json(request):
        # Also what keeps a web page out: a browser posts text/plain or a form cross-site without asking first.
        return error_response(415, "the body must be JSON: Content-Type: application/json (charset utf-8, if any)")
    if (
        services.committer.waiting > MAX_WAITING_BATCHES
        or services.backlog() > services.settings.engine.max_queue_depth
    ):
        # Backpressure: more stored alerts wait than the workers can take; Alertmanager retries later instead of
        # this process growing its memory.
        return _unavailable("too many alerts waiting to be processed, retry later")
    return None


def _is_json(request: web.Request) -> bool:
    charset = request.charset
    return request.content_type == "application/json" and (charset is None or str(charset).lower() in JSON_CHARSETS)


async def list_runs(request: web.Request) -> web.Response:
    store = request.app[SERVICES].store
    status_text = request.query.get("status")
    try:
        status = RunStatus(status_text) if status_text else None
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        return error_response(400, f"status must be one of {allowed}; limit a number")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        return error_response(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
    runs = await store.list_runs(status=status, limit=limit)
    return web.json_response({"runs": [run_json(run) for run in runs]}, dumps=compact_json)


async def get_run(request: web.Request) -> web.Response:
    store = request.app[SERVICES].store
    run = await store.get_run(request.match_info["run_id"])
    if run is None:
        return error_response(404, f"no run {request.match_info['run_id']!r}")
    audit = await store.list_audit(run_id=run.id, limit=100)
    body = run_json(run)
    body["audit"] = [{"at": a.at.isoformat(), "kind": a.kind, "actor": a.actor, "message": a.message} for a in audit]
    return web.json_response(body, dumps=compact_json)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    problems = []
    try:
        await services.store.ping()
    except StoreUnavailable as exc:
        problems.append(f"store: {exc}")
    if not services.is_ready():
        problems.append("rules and playbooks not loaded")
    problems.extend(services.problems())
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[SERVICES].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
