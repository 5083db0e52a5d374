"""``FakeKubeApiServer``: the HTTP face of the fake (auth, RBAC, faults, request log) and the test helpers."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import yaml
from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from . import errors
from .controller import Controller
from .errors import ApiError, Cause
from .registry import DeleteOptions, Deletion, Outcome, Registry, WriteOptions
from .resources import Resource, by_path, lookup
from .store import ObjectStore
from .validation import KUBERNETES_VERSION

JSON = dict[str, Any]

DEFAULT_TOKEN = "test-token"
DEFAULT_USER = "system:serviceaccount:autoremedy:autoremedy"
ANONYMOUS = "system:anonymous"

_RESOURCE_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


class RecordedRequest(NamedTuple):
    """One request as received; unpacks as ``(method, path, query, content_type, body)``."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any  # decoded JSON, the raw text if it was not JSON, None if empty


@dataclass
class Fault:
    """An injected failure (see ``FakeKubeApiServer.fail_next``); ``hits`` counts the requests it answered."""

    method: str
    pattern: re.Pattern[str]
    status: int | None
    remaining: int
    delay: float = 0.0
    message: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and self.pattern.search(path) is not None


@dataclass(frozen=True)
class Route:
    res: Resource
    namespace: str | None
    name: str | None
    sub: str | None

    @property
    def rbac_resource(self) -> str:
        return f"{self.res.plural}/{self.sub}" if self.sub else self.res.plural


def _verb(method: str, route: Route, query: Mapping[str, str]) -> str:
    if method == "GET":
        if route.name:
            return "get"
        return "watch" if query.get("watch") in ("true", "1") else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    if method not in verbs:
        raise errors.method_not_allowed()
    verb = verbs[method]
    if (verb == "create") == bool(route.name):  # POST goes to the collection, the rest to one object
        raise errors.method_not_allowed()
    return verb


def _options_error(options_kind: str, field: str, value: str) -> ApiError:
    return errors.invalid("meta.k8s.io", options_kind, "", [Cause("FieldValueNotSupported", value, field)])


def _dry_run(values: list[str], options_kind: str) -> list[str]:
    if any(v != "All" for v in values):
        listed = ", ".join(json.dumps(v) for v in values)
        detail = f'Unsupported value: []string{{{listed}}}: supported values: "All"'
        raise _options_error(options_kind, "dryRun", detail)
    return values


def write_options(query: MultiMapping[str], options_kind: str) -> WriteOptions:
    """CreateOptions/UpdateOptions/PatchOptions from the query; bad values are 422s like the real server's."""
    dry_run = _dry_run(query.getall("dryRun", []), options_kind)
    validation = query.get("fieldValidation") or "Warn"
    if validation not in ("Ignore", "Warn", "Strict"):
        detail = f'Unsupported value: "{validation}": supported values: "Ignore", "Strict", "Warn"'
        raise _options_error(options_kind, "fieldValidation", detail)
    return WriteOptions(dry_run=bool(dry_run), field_validation=validation)


def delete_options(query: MultiMapping[str], body: Any) -> DeleteOptions:
    """DeleteOptions from a JSON body if there is one, else from the query (the body wins, as upstream)."""
    source: Mapping[str, Any]
    if isinstance(body, dict):
        source = body
        dry_run = list(body.get("dryRun") or [])
    else:
        source = query
        dry_run = query.getall("dryRun", [])
    _dry_run(dry_run, "DeleteOptions")
    grace = source.get("gracePeriodSeconds")
    try:
        grace = int(grace) if grace is not None else None
    except ValueError as exc:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{grace}": invalid syntax') from exc
    policy = source.get("propagationPolicy")
    if policy is not None and policy not in ("Foreground", "Background", "Orphan"):
        detail = f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"'
        raise _options_error("DeleteOptions", "propagationPolicy", detail)
    found = source.get("preconditions")
    preconditions = {str(k): str(v) for k, v in found.items() if v} if isinstance(found, dict) else {}
    return DeleteOptions(grace, policy, bool(dry_run), preconditions)


class FakeKubeApiServer:
    """A kube-apiserver stand-in on ``127.0.0.1:<free port>`` for the real kubernetes-asyncio client.

    ``tokens`` maps bearer tokens to user names (default: ``test-token`` ->
    ``system:serviceaccount:autoremedy:autoremedy``). A request with an unknown token gets 401; one without a
    token is ``system:anonymous`` and may do nothing (403), as with anonymous auth enabled.
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | None = None,
        kubernetes_version: str = KUBERNETES_VERSION,
        tick_interval: float = 0.02,
        daemonset_nodes: int = 1,
    ) -> None:
        self.tokens = dict(tokens) if tokens is not None else {DEFAULT_TOKEN: DEFAULT_USER}
        self.kubernetes_version = kubernetes_version
        self.tick_interval = tick_interval
        self.store = ObjectStore()
        self.controller = Controller(self.store, daemonset_nodes=daemonset_nodes)
        self.registry = Registry(self.store, on_change=self.controller.on_change, version=kubernetes_version)
        #: Every request received, in order (including refused ones).
        self.requests: list[RecordedRequest] = []
        self.denied: set[tuple[str, str, str | None]] = set()
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> Self:
        if self._runner is not None:
            raise RuntimeError("FakeKubeApiServer already started")
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._stopping = asyncio.Event()
        self._ticker = asyncio.create_task(self._tick_forever(), name="fakekube-controller")
        return self

    async def stop(self) -> None:
        self._stopping.set()  # releases requests held by a delay fault
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        # The controller's resync loop (not a test wait): status moves on every tick.
        while True:
            self.controller.tick()
            await asyncio.sleep(self.tick_interval)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeKubeApiServer not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self, path: str | Path, *, token: str = DEFAULT_TOKEN, context: str = "fake", namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig whose current context reaches this server with ``token``; returns the path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-user", "user": {"token": token}}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": f"{context}-user", "namespace": namespace}}
            ],
            "current-context": context,
            "preferences": {},
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    # -- test helpers ----------------------------------------------------------------------------------

    def add(self, obj: JSON) -> JSON:
        """Seed an object (validated and defaulted, its status kept); a Deployment gets its ReplicaSet."""
        return self.registry.seed(obj)

    def update(self, obj: JSON) -> JSON:
        """Replace an object as another client's PUT would (generation, controller), bypassing auth and faults."""
        res = lookup(str(obj.get("kind", "")))
        m = obj.get("metadata") or {}
        namespace = m.get("namespace", "default")
        return self.registry.update(res, namespace, m.get("name", ""), copy.deepcopy(obj), opts=WriteOptions()).body

    def patch_status(self, kind: str, namespace: str, name: str, status: JSON) -> JSON:
        """Merge ``status`` into an object's status (a controller's status write). Pair it with
        ``stall_rollouts`` for Deployments, or the controller will put its own status back."""
        res = lookup(kind)
        patch = {"status": status}
        merge = "application/merge-patch+json"
        return self.registry.patch(
            res, namespace, name, patch, content_type=merge, opts=WriteOptions(), sub="status"
        ).body

    def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        return self.store.get(lookup(kind), namespace, name)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """Delete at once, without a request, a grace period or garbage collection."""
        self.store.remove(lookup(kind), namespace, name)

    @property
    def deletions(self) -> list[Deletion]:
        """Every DELETE the server accepted, with its grace period and propagation policy."""
        return self.registry.deletions

    def deny(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Make RBAC refuse ``verb`` (or ``*``) on ``resource`` (e.g. ``deployments/scale``) in ``namespace``
        (``None``: everywhere). Like RBAC, ``deployments`` and ``deployments/scale`` are separate resources."""
        self.denied.add((verb, resource, namespace))

    def allow(self, verb: str, resource: str, namespace: str | None = None) -> None:
        self.denied.discard((verb, resource, namespace))

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int | None = 500,
        *,
        times: int = 1,
        delay: float = 0.0,
        message: str | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests matching ``method`` (or ``*``) and ``path_regex`` (searched in the
        path) with ``status`` and the real server's Status body for it. ``delay`` holds the response first; with
        ``status=None`` the request is then served normally - a client timeout whose write still happened."""
        fault = Fault(method.upper() if method != "*" else "*", re.compile(path_regex), status, times, delay, message)
        self.faults.append(fault)
        return fault

    def stall_rollouts(self, namespace: str, name: str, stalled: bool = True) -> None:
        """Stop (or resume) the rollout of the workload ``namespace/name``: its new pods never become ready."""
        if stalled:
            self.controller.stalled.add((namespace, name))
        else:
            self.controller.stalled.discard((namespace, name))

    @property
    def controller_ticks(self) -> int:
        """How many controller passes have run: wait for it to advance to know the status had its chance."""
        return self.controller.ticks

    # -- HTTP ------------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = self._record(request, raw)
        try:
            if request.path in _OPEN_PATHS:
                return web.Response(text="ok")
            user = self._authenticate(request)
            if request.path in ("/version", "/version/"):
                return web.json_response(self._version())
            route = self._route(request.path)
            await self._inject_fault(request, route)
            verb = _verb(request.method, route, request.query)
            self._authorize(user, verb, route)
            outcome = self._serve(request, route, verb, body, raw)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.code, headers=exc.headers)
        headers: CIMultiDict[str] = CIMultiDict()
        for warning in outcome.warnings:
            headers.add("Warning", "299 - " + json.dumps(warning))  # RFC 7234 warn-text is a quoted string
        return web.json_response(outcome.body, status=outcome.code, headers=headers)

    def _record(self, request: web.Request, raw: bytes) -> Any:
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            body = text
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        query = dict(request.query)
        self.requests.append(RecordedRequest(request.method, request.path, query, content_type, body))
        return body

    def _version(self) -> JSON:
        # Every field: kubernetes-asyncio's VersionInfo model refuses a missing one.
        major, minor = self.kubernetes_version.split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "gitVersion": f"v{major}.{minor}.0",
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        if not header:
            return ANONYMOUS
        scheme, _, token = header.partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise errors.unauthorized()
        return user

    @staticmethod
    def _route(path: str) -> Route:
        m = _RESOURCE_PATH.match(path)
        if m is None:
            raise errors.path_not_found()
        group, version = ("", "v1") if m["core"] else (m["group"], m["version"])
        res = by_path(group, version, m["plural"])
        if res is None or (m["sub"] and m["sub"] not in res.subresources):
            raise errors.path_not_found()
        if m["namespace"] is None and m["name"]:  # everything served here is namespaced
            raise errors.path_not_found()
        return Route(res, m["namespace"], m["name"], m["sub"])

    async def _inject_fault(self, request: web.Request, route: Route) -> None:
        fault = next((f for f in self.faults if f.matches(request.method, request.path)), None)
        if fault is None:
            return
        fault.remaining -= 1
        fault.hits += 1
        if fault.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.delay)
        if fault.status is not None:
            raise errors.injected(fault.status, route.res, route.name or "", fault.message)

    def _authorize(self, user: str, verb: str, route: Route) -> None:
        denied = user == ANONYMOUS or any(
            v in ("*", verb) and r in ("*", route.rbac_resource) and ns in (None, route.namespace)
            for v, r, ns in self.denied
        )
        if denied:
            raise errors.forbidden(
                route.res,
                route.name or "",
                user=user,
                verb=verb,
                resource=route.rbac_resource,
                namespace=route.namespace,
            )

    def _serve(self, request: web.Request, route: Route, verb: str, body: Any, raw: bytes) -> Outcome:
        res, ns, name, sub = route.res, route.namespace, route.name or "", route.sub
        query = request.query
        if verb == "list":
            return Outcome(
                self.registry.list_objects(res, ns, query.get("labelSelector", ""), query.get("fieldSelector", ""))
            )
        if verb == "watch":
            raise errors.bad_request("the fake kube-apiserver does not serve watches")
        assert ns is not None  # _route refuses object paths outside a namespace
        if verb == "get":
            return Outcome(self.registry.read(res, ns, name, sub))
        if verb == "delete":
            if sub:
                raise errors.method_not_allowed()
            return self.registry.delete(res, ns, name, delete_options(query, body))
        if raw and body is not None and isinstance(body, str):
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {body[:80]}")
        return self._serve_write(request, route, verb, body)

    def _serve_write(self, request: web.Request, route: Route, verb: str, body: Any) -> Outcome:
        res, ns, name, sub = route.res, route.namespace or "", route.name or "", route.sub
        kind = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}[verb]
        opts = write_options(request.query, kind)
        if verb == "create":
            return self.registry.create(res, ns, body, opts)
        if verb == "update":
            return self.registry.update(res, ns, name, body, opts=opts, sub=sub)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        return self.registry.patch(res, ns, name, body, content_type=content_type, opts=opts, sub=sub)

    # ``list`` last: inside the class body it would shadow the builtin in later annotations.
    def list(self, kind: str, namespace: str | None = None) -> list[JSON]:
        """Stored objects of ``kind`` (kind, plural or short name) in ``namespace`` (None: all), with kind set."""
        return self.store.items(lookup(kind), namespace)
