"""How every Kubernetes action meets the API: names and namespace checked first, answers turned into verdicts.

404, 403, 422 and other 4xx give up with a sentence a person understands; 409 (the object changed), 429, 5xx,
timeouts and connection errors are tried again, re-reading first, until the step's deadline is near.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from autoremedy.actions.base import ActionContext, ActionResult
from autoremedy.config.settings import NamespacePolicy
from autoremedy.decide.kubernetes import name_problem, namespace_problem

if TYPE_CHECKING:
    from kubernetes_asyncio.client.exceptions import ApiException

RBAC_HINT = "grant it in the autoremedy ClusterRole (deploy/kubernetes/base/rbac.yaml)"
_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 2.0
_MARGIN = 0.05  # stop retrying this long before the deadline so the last error, not a timeout, is reported


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@cache
def _service_account_namespace() -> str | None:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or None
    except OSError:  # not in a cluster
        return None


def own_namespace(policy: NamespacePolicy) -> str | None:
    """The daemon's namespace: the setting, else the service account's (in a cluster), else None."""
    if policy.own_namespace is not None:
        return policy.own_namespace or None
    return _service_account_namespace()


def target_problem(namespace: str, names: dict[str, str], policy: NamespacePolicy) -> str | None:
    """Validate rendered names (DNS-1123) and the namespace policy before any call is made. The daemon's own
    namespace is denied too: a playbook must not scale autoremedy (or its database) down from an alert."""
    own = own_namespace(policy)
    if own is not None and namespace == own:
        return f"namespace {namespace!r} is autoremedy's own (kubernetes.namespaces.own_namespace): refused"
    problem = namespace_problem(namespace, allow=policy.allow, deny=policy.deny)
    for what, value in names.items():
        problem = problem or name_problem(value, what=what)
    return problem


def api_exception() -> type[ApiException]:
    """kubernetes-asyncio's error, imported when an `except` clause asks for it (Python evaluates the clause only
    while an exception is being matched): importing the package takes about half a second, which commands that
    never call the API (`validate`, `test`, `backtest`) should not pay."""
    from kubernetes_asyncio.client.exceptions import ApiException  # noqa: PLC0415 (on first use)

    return ApiException


async def with_retries(ctx: ActionContext, work: Callable[[], Awaitable[ActionResult]]) -> ActionResult:
    """Run work (which reads, decides and writes) again after retryable errors, within the step's deadline."""
    backoff = _FIRST_BACKOFF
    while True:
        try:
            return await work()
        except api_exception() as exc:
            verdict = verdict_for(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            verdict = ActionResult.retry(f"Kubernetes API unreachable: {type(exc).__name__}: {exc}")
        if verdict.outcome != "retry" or ctx.clock.monotonic() + backoff + _MARGIN >= ctx.deadline:
            return verdict
        await ctx.log.adebug("kubernetes call will be retried", reason=verdict.message, backoff=backoff)
        await ctx.clock.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF)


_GIVE_UP = {
    401: "unauthorized: the Kubernetes API rejected autoremedy's credentials ({message})",
    403: "forbidden: {message}; " + RBAC_HINT,
    404: "not found: {message}",
    422: "rejected as invalid: {message}",
}


def verdict_for(exc: ApiException) -> ActionResult:
    status = int(exc.status or 0)
    message = _status_message(exc)
    if status == 409:
        return ActionResult.retry(f"conflict, the object changed meanwhile (will re-read): {message}")
    if status == 429 or status >= 500 or status == 0:
        return ActionResult.retry(f"Kubernetes API answered {status}: {message}")
    template = _GIVE_UP.get(status, "Kubernetes API answered {status}: {message}")
    return ActionResult.give_up(template.format(status=status, message=message))


def _status_message(exc: ApiException) -> str:
    """The message of the Status object the API server sends with an error, else the HTTP reason."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "no message")


def dry_run_arg(ctx: ActionContext) -> dict[str, Any]:
    """Server-side dry run: the API server validates and answers as if it wrote, and persists nothing."""
    return {"dry_run": "All"} if ctx.dry_run else {}
