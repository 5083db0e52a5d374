"""Kubernetes ``Status`` failures, shaped field for field like kube-apiserver's.

The builders mirror ``k8s.io/apimachinery/pkg/api/errors`` (NewNotFound, NewForbidden, NewConflict, NewInvalid, ...)
because clients and our actions branch on ``reason``/``code`` and show ``message`` to people: a fake that answers
with different shapes would let error handling pass here and fail against a real cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .resources import Resource

JSON = dict[str, Any]

#: HTTP code -> ``Status.reason``, as ``metav1.StatusReason*``.
REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass(frozen=True)
class Cause:
    """One ``details.causes`` entry: a field error as ``field.Error`` renders it."""

    reason: str
    message: str
    field: str = ""

    def as_json(self) -> JSON:
        out: JSON = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def required(path: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", f"Required value: {detail}" if detail else "Required value", path)


def invalid_value(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {go_value(value)}: {detail}", path)


def not_supported(path: str, value: Any, supported: list[str]) -> Cause:
    allowed = ", ".join(json.dumps(s) for s in supported)
    return Cause("FieldValueNotSupported", f"Unsupported value: {go_value(value)}: supported values: {allowed}", path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {go_value(value)}", path)


def go_value(value: Any) -> str:
    """Render a value roughly as Go's ``%#v`` does in field errors: strings quoted, numbers bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


@dataclass
class ApiError(Exception):
    """A failure answered as a ``Status`` object with HTTP status ``code``."""

    code: int
    reason: str
    message: str
    details: JSON | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def body(self) -> JSON:
        # Key order as the real server serialises metav1.Status; "details" is absent when nil.
        out: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(name: str, group: str, kind: str, **extra: Any) -> JSON:
    # StatusDetails fields are all omitempty.
    out: JSON = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
    out.update({k: v for k, v in extra.items() if v})
    return out


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(name, res.group, res.plural))


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(res: Resource, name: str) -> ApiError:
    message = f'{res.qualified} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _details(name, res.group, res.plural))


def conflict(res: Resource, name: str, why: str = "") -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    message = f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(name, res.group, res.plural))


def forbidden(res: Resource, name: str, *, user: str, verb: str, resource: str, namespace: str | None) -> ApiError:
    subject = f'{res.qualified} "{name}"' if name else res.qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{res.group}" {scope}'
    )
    return ApiError(403, "Forbidden", message, _details(name, res.group, res.plural))


def invalid(group: str, kind: str, name: str, causes: list[Cause]) -> ApiError:
    """``NewInvalid``: one cause renders bare, several as ``[a, b]`` (``ErrorList.ToAggregate``)."""
    group_kind = f"{kind}.{group}" if group else kind
    errors = str(causes[0]) if len(causes) == 1 else "[" + ", ".join(str(c) for c in causes) + "]"
    details = _details(name, group, kind, causes=[c.as_json() for c in causes])
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: {errors}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def unsupported_media_type() -> ApiError:
    accepted = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
    message = f"the body of the request was in an unknown format - accepted media types include: {accepted}"
    return ApiError(415, "UnsupportedMediaType", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def unprocessable_patch() -> ApiError:
    """A JSON patch that fails to apply: ``NewGenericServerResponse(422, ...)`` keeps no detail (details is {})."""
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})


def _too_many_requests(message: str | None) -> ApiError:
    text = f"Too many requests: {message or 'please try again later'}"
    return ApiError(429, "TooManyRequests", text, {"retryAfterSeconds": 1}, {"Retry-After": "1"})


def _timeout(message: str | None) -> ApiError:
    text = f"Timeout: {message or 'request did not complete within requested timeout'}"
    return ApiError(504, "Timeout", text, {"retryAfterSeconds": 1})


def _service_unavailable(message: str | None) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message or "the server is currently unable to handle the request")


def injected(code: int, res: Resource, name: str, message: str | None) -> ApiError:
    """The failure a test asked for with ``fail_next``: the body the real server sends for that code."""
    if code == 409 and name:
        return conflict(res, name)
    if code == 404 and name:
        return not_found(res, name)
    builders = {
        500: lambda: internal(message or "injected fault"),
        429: lambda: _too_many_requests(message),
        503: lambda: _service_unavailable(message),
        504: lambda: _timeout(message),
    }
    if code in builders:
        return builders[code]()
    reason = REASONS.get(code, "InternalError" if code >= 500 else "Unknown")
    return ApiError(code, reason, message or f"injected {code}", {})
