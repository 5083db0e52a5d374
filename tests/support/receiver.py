"""In-process HTTP servers for async tests: a recording webhook receiver and a settable gauge exporter.

Both bind 127.0.0.1 port 0 (the kernel picks a free port, no race) and run on the test's event loop, so
they only answer while that loop is not blocked: wait with ``await``, never with ``time.sleep``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .procs import wait_for


class _LocalServer:
    """An aiohttp application on 127.0.0.1:<free port>, started and stopped explicitly."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.host = "127.0.0.1"
        """Another loopback address (127.0.0.2) stands for a second host, e.g. one an attacker aims at."""

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> Self:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        runner = web.AppRunner(self._build_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._port

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT`` - the form Prometheus ``static_configs`` targets use."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host_port}"

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


# --------------------------------------------------------------------------------------------------------
# Recording receiver
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]  # case-insensitive: headers["authorization"] works
    body: bytes
    json: Any  # parsed body; None if the body is empty or not JSON (or the JSON literal null)
    received_at: float  # time.monotonic()

    @property
    def is_json(self) -> bool:
        return self.json is not None


@dataclass
class _Response:
    status: int
    body: str
    content_type: str
    headers: Mapping[str, str] | None = None


class RecordingReceiver(_LocalServer):
    """Answers every request (any method, any path) and records it in ``requests``, in arrival order.

    The answer is 200 ``{"status": "ok"}`` unless ``set_response(path, status, ...)`` says otherwise.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self.requests: list[RecordedRequest] = []
        self._responses: dict[str, _Response] = {}
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        """From now on, record each request at once but answer it only after ``release()``: a test can catch its
        caller in the middle of the call (e.g. kill a daemon while one of its steps is certainly in flight)."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Answer the held requests, and answer new ones at once again."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def set_response(
        self,
        path: str,
        status: int,
        body: str | Mapping[str, Any] = "",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer requests to exactly ``path`` with ``status`` (and ``body``, ``headers``) from now on."""
        if isinstance(body, Mapping):
            text, ctype = json.dumps(body), content_type or "application/json"
        else:
            text, ctype = body, content_type or "text/plain"
        self._responses[path] = _Response(status, text, ctype, headers)

    def reset_response(self, path: str) -> None:
        self._responses.pop(path, None)

    def clear(self) -> None:
        self.requests.clear()

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def json_bodies(self, path: str | None = None) -> list[Any]:
        return [r.json for r in self.requests if r.is_json and (path is None or r.path == path)]

    async def wait_for_requests(
        self, count: int = 1, *, path: str | None = None, deadline_s: float = 30.0
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests (to ``path``, if given) were recorded; return them."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self.requests if path is None or r.path == path]

        await wait_for(
            lambda: len(matching()) >= count,
            timeout=deadline_s,
            message=lambda: f"{count} request(s) to {path or 'any path'} expected, got {len(matching())}",
        )
        return matching()

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=MultiDictProxy(MultiDict(request.query)),
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                body=body,
                json=parsed,
                received_at=time.monotonic(),
            )
        )
        if self._gate is not None:
            await self._gate.wait()
        spec = self._responses.get(request.path)
        if spec is None:
            return web.json_response({"status": "ok"})
        return web.Response(
            status=spec.status, text=spec.body, content_type=spec.content_type, headers=dict(spec.headers or {})
        )


# --------------------------------------------------------------------------------------------------------
# Gauge exporter
# --------------------------------------------------------------------------------------------------------

LabelKey = tuple[tuple[str, str], ...]


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class GaugeExporter(_LocalServer):
    """Serves settable gauges in the Prometheus text format on ``GET /metrics``.

    ``set("demo_healthy", 0, labels={"namespace": "default"})`` changes what the next scrape sees;
    ``scrape_count`` tells how many scrapes have been served so far.
    """

    def __init__(self) -> None:
        super().__init__()
        #: Scrapes of /metrics served so far.
        self.scrape_count = 0
        self._gauges: dict[str, dict[LabelKey, float]] = {}
        self._help: dict[str, str] = {}

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def set(self, name: str, value: float, labels: Mapping[str, str] | None = None, *, help_text: str = "") -> None:
        key: LabelKey = tuple(sorted((labels or {}).items()))
        self._gauges.setdefault(name, {})[key] = float(value)
        if help_text:
            self._help[name] = help_text

    def get(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        key: LabelKey = tuple(sorted((labels or {}).items()))
        return self._gauges.get(name, {}).get(key)

    def remove(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Stop exporting one series (Prometheus then marks it stale)."""
        key: LabelKey = tuple(sorted((labels or {}).items()))
        series = self._gauges.get(name, {})
        series.pop(key, None)
        if not series:
            self._gauges.pop(name, None)

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self._gauges.items()):
            if name in self._help:
                lines.append(f"# HELP {name} {self._help[name]}")
            lines.append(f"# TYPE {name} gauge")
            for key, value in sorted(series.items()):
                label_text = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in key)
                selector = f"{name}{{{label_text}}}" if label_text else name
                lines.append(f"{selector} {_format_value(value)}")
        return "\n".join(lines) + "\n"

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.scrape_count += 1
        return web.Response(
            body=self.render().encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )
