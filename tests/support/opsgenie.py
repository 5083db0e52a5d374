"""A local fake of the Opsgenie Alert API v2: ``POST {fake.url}/v2/alerts``,
``POST {fake.url}/v2/alerts/{id}/close?identifierType=...`` and ``GET {fake.url}/v2/alerts/requests/{requestId}``;
de-duplicates open alerts by alias.

The ``fake_opsgenie`` fixture (function scope, stopped at teardown) is registered by the root conftest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from aiohttp import web

from .fakeservice import FakeService, Reply, parse_json, retry_after_headers

#: Default API key of the fake (any syntactically valid value would do).
OPSGENIE_API_KEY: Final = "8c5e1b7a-3f2d-4c6e-9a0b-1d2e3f4a5b6c"


_OG_STRING_LIMITS: Final[Mapping[str, int]] = {
    "message": 130,
    "alias": 512,
    "description": 15000,
    "entity": 512,
    "source": 100,
    "user": 100,
    "note": 25000,
}
_OG_CLOSE_FIELDS: Final = ("user", "source", "note")
_OG_PRIORITIES: Final = ("P1", "P2", "P3", "P4", "P5")
_OG_IDENTIFIER_TYPES: Final = ("id", "alias", "tiny")
_OG_NOT_PROCESSABLE: Final = "Request body is not processable. Please check the errors."
_OG_RECIPIENT_TYPES: Final = frozenset({"team", "user", "escalation", "schedule"})

AlertStatus = Literal["open", "closed"]


@dataclass
class OpsgenieAlert:
    """An alert; creates with the alias of an open alert are de-duplicated into it (``count`` + 1)."""

    id: str
    tiny_id: str
    alias: str  # the client's alias, or the alert id when none was given (so it never de-duplicates)
    message: str
    priority: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    entity: str | None = None
    source: str | None = None
    status: AlertStatus = "open"
    count: int = 1
    payloads: list[dict[str, Any]] = field(default_factory=list)  # every create body that landed here
    close_payload: dict[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


def _og_string_errors(body: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = "should be a string"
        elif len(value) > _OG_STRING_LIMITS[name]:
            errors[name] = f"{name} can not be longer than {_OG_STRING_LIMITS[name]} characters"
    return errors


def _og_string_list_errors(body: Mapping[str, Any], name: str, *, max_items: int, max_len: int) -> dict[str, str]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return {name: "should be a list of strings"}
    if len(value) > max_items:
        return {name: f"can not have more than {max_items} items"}
    if any(len(v) > max_len for v in value):
        return {name: f"items can not be longer than {max_len} characters"}
    return {}


def _og_recipient_errors(body: Mapping[str, Any], name: str) -> dict[str, str]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, list):
        return {name: "should be a list"}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.get("type") not in _OG_RECIPIENT_TYPES:
            return {f"{name}[{i}]": f"type should be one of [{', '.join(sorted(_OG_RECIPIENT_TYPES))}]"}
        if not (item.get("id") or item.get("name") or item.get("username")):
            return {f"{name}[{i}]": "id or name should be provided"}
    return {}


def _og_create_errors(body: Mapping[str, Any]) -> dict[str, str]:
    message = body.get("message")
    errors: dict[str, str] = {}
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    errors |= {k: v for k, v in _og_string_errors(body, _OG_STRING_LIMITS).items() if k not in errors}
    priority = body.get("priority")
    if priority is not None and priority not in _OG_PRIORITIES:
        errors["priority"] = f"should be one of [ {', '.join(_OG_PRIORITIES)} ]"
    details = body.get("details")
    if details is not None and (
        not isinstance(details, dict) or any(isinstance(v, dict | list) for v in details.values())
    ):
        errors["details"] = "should be a map of key-value pairs"
    errors |= _og_string_list_errors(body, "tags", max_items=20, max_len=50)
    errors |= _og_string_list_errors(body, "actions", max_items=10, max_len=50)
    errors |= _og_recipient_errors(body, "responders")
    errors |= _og_recipient_errors(body, "visibleTo")
    return errors


class FakeOpsgenie(FakeService):
    """Opsgenie Alert API v2: create, close and request status.

    Every request needs ``Authorization: GenieKey <api_key>`` (else 401 ``{"message": "Could not
    authenticate", "took": ..., "requestId": ...}``). Valid create/close requests answer 202 ``{"result":
    "Request will be processed", "took": ..., "requestId": ...}`` and are processed at once; as in Opsgenie,
    a close of an alert that does not exist is still a 202 whose request status (``GET
    /v2/alerts/requests/{requestId}``) says ``"isSuccess": false, "status": "Alert does not exist"``.
    Semantic errors answer 422 ``{"message": "Request body is not processable. ...", "errors": {field: why},
    ...}``, unparsable JSON 400, a body not sent as ``application/json`` 415.
    """

    def __init__(self, api_key: str = OPSGENIE_API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.integration_id = str(uuid.uuid4())
        #: Every alert ever created, in order (closed ones stay here).
        self.alerts: list[OpsgenieAlert] = []
        #: Outcome of every accepted create/close request, by requestId.
        self.request_statuses: dict[str, dict[str, Any]] = {}
        self._open: dict[str, OpsgenieAlert] = {}

    @property
    def alerts_url(self) -> str:
        return f"{self.url}/v2/alerts"

    @property
    def open_alerts(self) -> dict[str, OpsgenieAlert]:
        """Open alerts by alias."""
        return dict(self._open)

    def alert(self, alias: str) -> OpsgenieAlert:
        """The most recent alert with ``alias``."""
        for alert in reversed(self.alerts):
            if alert.alias == alias:
                return alert
        raise KeyError(alias)

    def fail_next(
        self,
        status: int = 500,
        *,
        operation: Literal["create", "close", "status"] | None = None,
        retry_after: int | None = None,
        times: int = 1,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (of ``operation``, else of any kind) with HTTP ``status``
        (429, 500, 422, ...) and process nothing. ``Retry-After`` only if ``retry_after`` is given."""

        def make() -> Reply:
            payload: dict[str, Any] = dict(body) if body is not None else _og_fault_body(status)
            payload |= {"took": 0.001, "requestId": str(uuid.uuid4())}
            return Reply(status, payload, retry_after_headers(retry_after))

        self._add_fault(operation, make, times)

    # -- HTTP ------------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/alerts", self._wrap(self._create))
        app.router.add_post("/v2/alerts/{identifier}/close", self._wrap(self._close))
        app.router.add_get("/v2/alerts/requests/{request_id}", self._wrap(self._request_status))
        app.router.add_route("*", "/{tail:.*}", self._wrap(self._not_found))
        return app

    async def _create(self, request: web.Request, body: bytes) -> Reply:
        started = time.perf_counter()
        rejection = self._take_fault("create") or self._auth_rejection(request, started)
        if rejection is not None:
            return rejection
        parsed = self._json_body(request, body, started, required=True)
        if isinstance(parsed, Reply):
            return parsed
        errors = _og_create_errors(parsed)
        if errors:
            return self._answer(422, started, message=_OG_NOT_PROCESSABLE, errors=errors)
        request_id = str(uuid.uuid4())
        self.request_statuses[request_id] = self._apply_create(parsed)
        return self._answer(202, started, request_id, result="Request will be processed")

    async def _close(self, request: web.Request, body: bytes) -> Reply:
        started = time.perf_counter()
        rejection = self._take_fault("close") or self._auth_rejection(request, started)
        if rejection is not None:
            return rejection
        identifier_type = request.query.get("identifierType", "id")
        if identifier_type not in _OG_IDENTIFIER_TYPES:
            errors = {"identifierType": f"should be one of [{', '.join(_OG_IDENTIFIER_TYPES)}]"}
            return self._answer(422, started, message=_OG_NOT_PROCESSABLE, errors=errors)
        parsed = self._json_body(request, body, started, required=False)
        if isinstance(parsed, Reply):
            return parsed
        errors = _og_string_errors(parsed, _OG_CLOSE_FIELDS)
        if errors:
            return self._answer(422, started, message=_OG_NOT_PROCESSABLE, errors=errors)
        request_id = str(uuid.uuid4())
        identifier = request.match_info["identifier"]
        self.request_statuses[request_id] = self._apply_close(identifier, identifier_type, parsed)
        return self._answer(202, started, request_id, result="Request will be processed")

    async def _request_status(self, request: web.Request, body: bytes) -> Reply:
        del body
        started = time.perf_counter()
        rejection = self._take_fault("status") or self._auth_rejection(request, started)
        if rejection is not None:
            return rejection
        status = self.request_statuses.get(request.match_info["request_id"])
        if status is None:
            return self._answer(404, started, message="Request not found. It might not be processed, yet.")
        return self._answer(200, started, data=status)

    async def _not_found(self, request: web.Request, body: bytes) -> Reply:
        del request, body
        return self._answer(404, time.perf_counter(), message="Resource or handler not found")

    # -- helpers ---------------------------------------------------------------------------------------

    def _answer(self, status: int, started: float, request_id: str | None = None, **fields: Any) -> Reply:
        took = round(time.perf_counter() - started, 3)
        return Reply(status, {**fields, "took": took, "requestId": request_id or str(uuid.uuid4())})

    def _auth_rejection(self, request: web.Request, started: float) -> Reply | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme == "GenieKey" and key.strip() == self.api_key:
            return None
        return self._answer(401, started, message="Could not authenticate")

    def _json_body(
        self, request: web.Request, body: bytes, started: float, *, required: bool
    ) -> dict[str, Any] | Reply:
        if not body and not required:
            return {}
        if request.content_type != "application/json":
            return self._answer(415, started, message="Content-Type must be application/json")
        parsed = parse_json(body)
        if not isinstance(parsed, dict):
            return self._answer(400, started, message="Request body is not a valid JSON object")
        return parsed

    def _apply_create(self, body: dict[str, Any]) -> dict[str, Any]:
        alias: str | None = body.get("alias") or None
        existing = self._open.get(alias) if alias else None
        if existing is not None:
            existing.count += 1
            existing.payloads.append(body)
            return self._status_record("Create", True, "Alert is deduplicated", existing)
        alert_id = str(uuid.uuid4())
        alert = OpsgenieAlert(
            id=alert_id,
            tiny_id=str(len(self.alerts) + 1),
            alias=alias or alert_id,
            message=body["message"],
            priority=body.get("priority") or "P3",
            description=body.get("description"),
            tags=list(body.get("tags") or []),
            details=dict(body.get("details") or {}),
            entity=body.get("entity"),
            source=body.get("source"),
            payloads=[body],
        )
        self.alerts.append(alert)
        self._open[alert.alias] = alert
        return self._status_record("Create", True, "Created alert", alert)

    def _apply_close(self, identifier: str, identifier_type: str, body: dict[str, Any]) -> dict[str, Any]:
        alert = self._find(identifier, identifier_type)
        if alert is None:
            return self._status_record("Close", False, "Alert does not exist", None)
        if not alert.is_open:
            return self._status_record("Close", False, "Alert is already closed", alert)
        alert.status = "closed"
        alert.close_payload = body
        del self._open[alert.alias]
        return self._status_record("Close", True, "Closed alert", alert)

    def _find(self, identifier: str, identifier_type: str) -> OpsgenieAlert | None:
        if identifier_type == "alias":
            return self._open.get(identifier)
        attribute = "id" if identifier_type == "id" else "tiny_id"
        return next((a for a in self.alerts if getattr(a, attribute) == identifier), None)

    def _status_record(self, action: str, success: bool, status: str, alert: OpsgenieAlert | None) -> dict[str, Any]:
        return {
            "success": success,
            "action": action,
            "processedAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "integrationId": self.integration_id,
            "isSuccess": success,
            "status": status,
            "alertId": alert.id if alert else "",
            "alias": alert.alias if alert else "",
        }


def _og_fault_body(status: int) -> dict[str, Any]:
    if status == 422:
        return {"message": _OG_NOT_PROCESSABLE, "errors": {"fault": "injected"}}
    if status == 429:
        return {"message": "Too many requests"}
    return {"message": "Internal Server Error"}
