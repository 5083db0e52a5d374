"""What the local fakes of Slack, PagerDuty and Opsgenie share: each binds 127.0.0.1 port 0 (``_LocalServer``),
runs on the test's event loop, logs every request it answered in ``requests`` (with the status and body it answered)
and can be told to fail the next call(s) the way the real service fails (``fail_next``; Slack also ``error_next``).

Where a real error text was not documented, a fake's wording is its own; tests should assert on status codes,
``error`` codes and field names, not on those sentences.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .procs import wait_for
from .receiver import RecordedRequest, _LocalServer


@dataclass(frozen=True)
class SaaSRequest(RecordedRequest):
    """A request a fake received (see ``RecordedRequest``) plus what the fake answered."""

    status: int = 0  # HTTP status answered
    response: Any = None  # JSON body answered
    args: Mapping[str, Any] = field(default_factory=dict)  # Slack: the merged method arguments (no token)


@dataclass(frozen=True)
class Reply:
    status: int
    payload: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Fault:
    key: str | None  # which call it hits (Slack method, Opsgenie operation); None: the next call of any kind
    make: Callable[[], Reply]
    remaining: int


Handler = Callable[[web.Request, bytes], Awaitable[Reply]]


class FakeService(_LocalServer):
    """Request log, fault queue and JSON answering shared by the three fakes."""

    def __init__(self) -> None:
        super().__init__()
        #: Every request answered, in arrival order (faulted and rejected ones included).
        self.requests: list[SaaSRequest] = []
        self._faults: list[Fault] = []

    # -- faults ----------------------------------------------------------------------------------------

    def _add_fault(self, key: str | None, make: Callable[[], Reply], times: int) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        self._faults.append(Fault(key, make, times))

    def _take_fault(self, key: str) -> Reply | None:
        for fault in self._faults:
            if fault.key is None or fault.key == key:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.make()
        return None

    @property
    def pending_faults(self) -> int:
        """How many injected failures have not been served yet."""
        return sum(f.remaining for f in self._faults)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- request log -----------------------------------------------------------------------------------

    def requests_to(self, path: str, method: str | None = None) -> list[SaaSRequest]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    async def wait_for_requests(
        self, count: int = 1, *, path: str | None = None, deadline_s: float = 10.0
    ) -> list[SaaSRequest]:
        """Wait until at least ``count`` requests (to ``path``, if given) were answered; return them."""

        def matching() -> list[SaaSRequest]:
            return [r for r in self.requests if path is None or r.path == path]

        await wait_for(
            lambda: len(matching()) >= count,
            timeout=deadline_s,
            message=lambda: f"{count} request(s) to {path or 'any path'} expected, got {len(matching())}",
        )
        return matching()

    # -- plumbing --------------------------------------------------------------------------------------

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            body = await request.read()
            reply = await handler(request, body)
            self.requests.append(
                SaaSRequest(
                    method=request.method,
                    path=request.path,
                    query=MultiDictProxy(MultiDict(request.query)),
                    headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                    body=body,
                    json=parse_json(body),
                    received_at=time.monotonic(),
                    status=reply.status,
                    response=reply.payload,
                    args=reply.args,
                )
            )
            return web.json_response(reply.payload, status=reply.status, headers=dict(reply.headers))

        return wrapped


def parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def retry_after_headers(retry_after: int | None) -> dict[str, str]:
    return {} if retry_after is None else {"Retry-After": str(retry_after)}
