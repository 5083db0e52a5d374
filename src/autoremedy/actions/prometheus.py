"""`prometheus.query` and `prometheus.verify`: read Prometheus to capture values and to check that a fix worked.

prometheus-api-client is synchronous (requests), so each query runs in a thread, with a small bounded retry and a
timeout: its defaults would block for seconds on an unreachable server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import Field
from requests.exceptions import RequestException
from urllib3.util.retry import Retry

from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec
from autoremedy.config.settings import PrometheusSettings
from autoremedy.models.durations import Duration, format_duration


class QueryInputs(ActionInputs):
    query: str = Field(
        min_length=1,
        description="PromQL; templated values are escaped as string-literal content (use them inside quotes)",
        json_schema_extra={"escape": "promql"},
    )


class VerifyInputs(QueryInputs):
    within: Duration = Field(default=timedelta(minutes=5), description="how long the fix may take to show")
    interval: Duration = Field(default=timedelta(seconds=15), description="how often to ask")


class QueryFailed(Exception):
    pass


class PrometheusReader:
    def __init__(self, settings: PrometheusSettings) -> None:
        self._timeout = settings.timeout.total_seconds()
        retry = Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504), allowed_methods=("GET", "POST"))
        self._client = PrometheusConnect(
            url=settings.url, disable_ssl=False, retry=retry, timeout=max(1, int(self._timeout))
        )

    async def query(self, promql: str) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(self._timeout + 1):
                result: list[dict[str, Any]] = await asyncio.to_thread(self._client.custom_query, promql)
                return result
        except (PrometheusApiClientException, RequestException, TimeoutError, ValueError) as exc:
            raise QueryFailed(f"{type(exc).__name__}: {exc}") from exc


def first_value(result: list[dict[str, Any]]) -> str | None:
    """The first sample's value as Prometheus sent it (a string), for messages and step results."""
    if not result:
        return None
    value = result[0].get("value")
    return str(value[1]) if isinstance(value, list) and len(value) == 2 else None


def _series(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"labels": item.get("metric", {}), "value": first_value([item])} for item in result[:20]]


class PrometheusActions:
    def __init__(self, reader: PrometheusReader) -> None:
        self._reader = reader

    def specs(self) -> list[ActionSpec]:
        return [
            ActionSpec(
                "prometheus.query",
                QueryInputs,
                self.query,
                "Run a PromQL query and keep its values in the step result (for messages).",
                dry_run=True,
                after_crash="the query runs again; it only reads.",
                mutates=False,
            ),
            ActionSpec(
                "prometheus.verify",
                VerifyInputs,
                self.verify,
                "Check that a fix worked: a PromQL query must return a result within `within`.",
                dry_run=True,
                time_input="within",
                verifies=True,
                after_crash="the check starts again with a whole `within`; it only reads.",
                mutates=False,
            ),
        ]

    async def query(self, inputs: QueryInputs, ctx: ActionContext) -> ActionResult:
        try:
            result = await self._reader.query(inputs.query)
        except QueryFailed as exc:
            return ActionResult.retry(f"Prometheus query failed: {exc}")
        return ActionResult.done(
            f"{len(result)} series, first value {first_value(result)}",
            value=first_value(result),
            series=_series(result),
        )

    async def verify(self, inputs: VerifyInputs, ctx: ActionContext) -> ActionResult:
        stop_at = min(ctx.clock.monotonic() + inputs.within.total_seconds(), ctx.deadline - 0.05)
        checks, last = 0, "no answer yet"
        while True:
            checks += 1
            try:
                result = await self._reader.query(inputs.query)
            except QueryFailed as exc:
                result, last = [], f"query failed: {exc}"
            else:
                last = "empty result"
            if result:
                return ActionResult.done(
                    f"verified after {checks} check(s): {first_value(result)}",
                    last_value=first_value(result),
                    series=_series(result),
                    checks=checks,
                )
            left = stop_at - ctx.clock.monotonic()
            if ctx.dry_run or left <= 0:
                break
            # The last check falls on the deadline itself: a fix that shows just before it still counts.
            await ctx.clock.sleep(min(inputs.interval.total_seconds(), left))
        if ctx.dry_run:
            return ActionResult.done(
                f"dry run: the condition does not hold now ({last}); a real run would wait up "
                f"to {format_duration(inputs.within)}",
                checks=checks,
            )
        return ActionResult.give_up(
            f"verification failed: `{inputs.query}` returned no result within "
            f"{format_duration(inputs.within)} ({checks} checks; last: {last})",
            last_value=None,
            checks=checks,
        )
