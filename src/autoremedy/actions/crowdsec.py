"""`crowdsec.ban` and `crowdsec.unban`: decisions in a CrowdSec Local API (LAPI), as a watcher machine.

A ban is an alert carrying one ban decision (`POST /v1/alerts`), the way `cscli decisions add` makes one; it is read
back as a bouncer sees it (`GET /v1/decisions`) when a bouncer key is configured. Every value is parsed and checked
against the allowlist and the widest allowed prefix before any call. The watcher's JWT is kept until it expires; a
401 (the LAPI restarted with a new signing secret, say) logs in again once.

Pitfalls of the real LAPI (1.4): login needs a `name/version` User-Agent with exactly one '/'; `GET /v1/decisions`
answers `null`, not `[]`; a malformed alert answers 500, not 400; durations are Go's (`96h`, not `4d`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import aiohttp
from pydantic import Field

from autoremedy import __version__
from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.config.integrations import CrowdSecSettings
from autoremedy.decide.crowdsec import (
    BanTarget,
    alerts_decisions,
    ban_alert,
    ban_refusal,
    decisions_on,
    longest_remaining,
    parse_allowlist,
    parse_target,
    token_lifetime,
)
from autoremedy.models.durations import Duration, format_duration

USER_AGENT = f"autoremedy/{__version__}"
_TOKEN_MARGIN = timedelta(seconds=30)  # log in again this long before the JWT's `expire`
_MARGIN_S = 0.05  # a request must be able to finish before the step's deadline
_MESSAGE_EXCERPT = 300
NOT_CONFIGURED = "CrowdSec is not configured: add a `crowdsec:` section (url, machine_id, password) to the config"


class BanInputs(ActionInputs):
    ip: str = Field(description="an address (203.0.113.7) or a CIDR (203.0.113.0/24)")
    duration: Duration = Field(default=timedelta(hours=4), description="how long the ban lasts")
    reason: str | None = Field(default=None, description="shown in CrowdSec as the decision's scenario")


class UnbanInputs(ActionInputs):
    ip: str = Field(description="an address or a CIDR; every decision on it is deleted")


class LapiProblem(Exception):
    """A call to the LAPI failed; `verdict` says whether to retry."""

    def __init__(self, verdict: ActionResult) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


class Answer(NamedTuple):
    status: int
    body: Any
    server_date: datetime | None
    """The answer's `Date` header: the LAPI's own time."""


class CrowdSecClient:
    """The LAPI as one watcher machine (JWT, cached) and optionally one bouncer (API key). Calls go through the
    daemon's shared aiohttp session (`ctx.http`), each bounded by the step's deadline."""

    def __init__(self, settings: CrowdSecSettings, *, clock: Callable[[], float] = SYSTEM_CLOCK.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._token: str | None = None
        self._valid_until: float | None = None
        """On `clock`: when the token was issued plus its lifetime (`expire` minus the LAPI's `Date`), less a
        margin. Measured so, a local clock that differs from the LAPI's does not matter."""
        self._lock = asyncio.Lock()

    @property
    def has_bouncer(self) -> bool:
        return self.settings.bouncer_key is not None

    async def login(self, ctx: ActionContext, *, fresh: bool = False) -> str:
        """The cached JWT while it is valid, else a new one from `POST /v1/watchers/login`."""
        async with self._lock:
            if not fresh and self._token is not None and self._token_valid():
                return self._token
            self._token = None
            credentials = {
                "machine_id": self.settings.machine_id,
                "password": self.settings.password.get_secret_value(),
            }
            issued = self._clock()
            answer = await self._send(ctx, "POST", "/v1/watchers/login", body=credentials)
            if answer.status == 401:
                raise LapiProblem(
                    ActionResult.give_up(
                        f"CrowdSec LAPI refused the watcher login of machine {self.settings.machine_id!r}: wrong "
                        f"credentials ({_message(answer.body)}); check crowdsec.machine_id and crowdsec.password"
                    )
                )
            _raise_for_status(answer, "POST /v1/watchers/login")
            body = answer.body if isinstance(answer.body, Mapping) else {}
            token = body.get("token")
            if not isinstance(token, str) or not token:
                raise LapiProblem(ActionResult.retry("CrowdSec LAPI login answered without a token"))
            lifetime = token_lifetime(body.get("expire"), answer.server_date or SYSTEM_CLOCK.now())
            self._token = token
            self._valid_until = None if lifetime is None else issued + (lifetime - _TOKEN_MARGIN).total_seconds()
            await ctx.log.adebug("crowdsec login", machine_id=self.settings.machine_id, lifetime=str(lifetime))
            return token

    def _token_valid(self) -> bool:
        return self._valid_until is None or self._clock() < self._valid_until

    async def watcher(
        self,
        ctx: ActionContext,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        """A call with the watcher's JWT; on 401 log in again and repeat it once."""
        token = await self.login(ctx)
        answer = await self._send(ctx, method, path, token=token, params=params, body=body)
        if answer.status == 401:
            await ctx.log.ainfo("crowdsec token refused, logging in again", answer=_message(answer.body))
            token = await self.login(ctx, fresh=True)
            answer = await self._send(ctx, method, path, token=token, params=params, body=body)
            if answer.status == 401:
                raise LapiProblem(
                    ActionResult.give_up(
                        f"CrowdSec LAPI refused a fresh token for {method} {path}: {_message(answer.body)}"
                    )
                )
        _raise_for_status(answer, f"{method} {path}")
        return answer.body

    async def bouncer_decisions(self, ctx: ActionContext, target: BanTarget) -> list[Mapping[str, Any]]:
        """`GET /v1/decisions?ip=` (or `range=`) with the bouncer key: what bouncers enforce on that value
        (decisions on it, and on ranges containing it). `null` means none."""
        key = self.settings.bouncer_key
        assert key is not None
        headers = {"X-Api-Key": key.get_secret_value()}
        answer = await self._send(ctx, "GET", "/v1/decisions", headers=headers, params=target.query)
        if answer.status in (401, 403):
            raise LapiProblem(
                ActionResult.give_up(
                    f"CrowdSec LAPI refused the bouncer key (crowdsec.bouncer_key): {_message(answer.body)}"
                )
            )
        _raise_for_status(answer, "GET /v1/decisions")
        return [d for d in answer.body or [] if isinstance(d, Mapping)]

    async def active_decisions(self, ctx: ActionContext, target: BanTarget) -> list[Mapping[str, Any]]:
        """Decisions on or around the value: as bouncers see them with a bouncer key, else from the watcher's
        `GET /v1/alerts?has_active_decision=true`."""
        if self.has_bouncer:
            return await self.bouncer_decisions(ctx, target)
        params = {**target.query, "has_active_decision": "true"}
        return alerts_decisions(await self.watcher(ctx, "GET", "/v1/alerts", params=params))

    async def _send(
        self,
        ctx: ActionContext,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Answer:
        remaining = ctx.deadline - ctx.clock.monotonic() - _MARGIN_S
        if remaining <= 0:
            raise LapiProblem(ActionResult.retry(f"no time left in the step for {method} {path}"))
        timeout = aiohttp.ClientTimeout(total=min(self.settings.request_timeout.total_seconds(), remaining))
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        try:
            async with ctx.http.request(
                method, f"{self.settings.url}{path}", headers=sent, params=params, json=body, timeout=timeout
            ) as response:
                text = await response.text()
                date = response.headers.get("Date")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise LapiProblem(
                ActionResult.retry(f"CrowdSec LAPI unreachable ({method} {path}): {type(exc).__name__}: {exc}")
            ) from exc
        return Answer(response.status, _json_or_text(text), _http_date(date))


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text[:_MESSAGE_EXCERPT]


def _http_date(value: str | None) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None


def _message(body: Any) -> str:
    if isinstance(body, Mapping):
        return str(body.get("message") or body)[:_MESSAGE_EXCERPT]
    return str(body)[:_MESSAGE_EXCERPT] if body else "no message"


def _raise_for_status(answer: Answer, call: str) -> None:
    """2xx passes; 429, 5xx and no answer are tried again; any other answer gives up with the LAPI's own words.
    (The LAPI answers 500 to a malformed alert too; what is sent here is built so that it never is.)"""
    if 200 <= answer.status < 300:
        return
    text = f"CrowdSec LAPI answered {answer.status} to {call}: {_message(answer.body)}"
    if answer.status == 429 or answer.status >= 500:
        raise LapiProblem(ActionResult.retry(text))
    raise LapiProblem(ActionResult.give_up(text))


def _until(decisions: list[Mapping[str, Any]]) -> str:
    remaining = longest_remaining(decisions)
    if remaining is None:
        return "time left unknown"
    return f"{format_duration(timedelta(seconds=int(remaining.total_seconds())))} left"


class CrowdSecActions:
    def __init__(
        self, settings: CrowdSecSettings | None, *, clock: Callable[[], float] = SYSTEM_CLOCK.monotonic
    ) -> None:
        self.client = CrowdSecClient(settings, clock=clock) if settings is not None else None
        self._allowlist = parse_allowlist(settings.allowlist) if settings is not None else ()

    def specs(self) -> list[ActionSpec]:
        return [
            ActionSpec(
                "crowdsec.ban",
                BanInputs,
                self.ban,
                "Ban an IP or range in CrowdSec (a decision bouncers enforce), never an allowlisted one.",
                dry_run=True,
            ),
            ActionSpec(
                "crowdsec.unban",
                UnbanInputs,
                self.unban,
                "Delete CrowdSec's decisions on an IP or range.",
                dry_run=True,
            ),
        ]

    # -- ban ----------------------------------------------------------------------------------------------

    async def ban(self, inputs: BanInputs, ctx: ActionContext) -> ActionResult:
        if self.client is None:
            return ActionResult.give_up(NOT_CONFIGURED)
        try:
            target = parse_target(inputs.ip)
        except ValueError as exc:
            return ActionResult.give_up(f"refused before any call: {exc}")
        settings = self.client.settings
        refusal = ban_refusal(
            target,
            allowlist=self._allowlist,
            max_prefix_v4=settings.max_prefix,
            max_prefix_v6=settings.max_prefix_v6,
        )
        if refusal is not None:
            await ctx.log.ainfo("crowdsec ban refused", value=target.value, reason=refusal)
            return ActionResult.give_up(f"refused before any call: {refusal}", value=target.value, refused=True)
        if inputs.duration <= timedelta(0):
            return ActionResult.give_up("refused before any call: duration must be longer than zero")
        return await _verdicts(self._ban(self.client, target, inputs, ctx))

    async def _ban(
        self, client: CrowdSecClient, target: BanTarget, inputs: BanInputs, ctx: ActionContext
    ) -> ActionResult:
        data: dict[str, Any] = {
            "value": target.value,
            "scope": target.scope,
            "duration": format_duration(inputs.duration),
        }
        if ctx.dry_run:
            await client.login(ctx)  # a rehearsal proves the credentials work
        existing = decisions_on(await client.active_decisions(ctx, target), target)
        if existing:
            return ActionResult.done(
                f"{target.value} is already banned ({_until(existing)}): no second decision pushed",
                **data,
                took_effect=True,
                existing=[dict(d) for d in existing],
            )
        reason = inputs.reason or f"autoremedy run {ctx.run_id} on {ctx.target}"
        alert = ban_alert(
            target, duration=inputs.duration, reason=reason, note=f"autoremedy {ctx.operation_id}", now=ctx.clock.now()
        )
        decision = alert["decisions"][0]
        if ctx.dry_run:
            return ActionResult.done(
                f"dry run: would ban {target.scope} {target.value} for {decision['duration']} ({decision['scenario']})",
                **data,
                alert=alert,
            )
        ids = await client.watcher(ctx, "POST", "/v1/alerts", body=[alert])
        data["alert_ids"] = ids
        await ctx.log.ainfo("crowdsec ban pushed", value=target.value, duration=decision["duration"], alert_ids=ids)
        if not client.has_bouncer:
            return ActionResult.done(
                f"banned {target.scope} {target.value} for {decision['duration']} (alert {ids}); not read back: "
                "set crowdsec.bouncer_key to confirm what bouncers see",
                **data,
                took_effect=None,
            )
        seen = decisions_on(await client.bouncer_decisions(ctx, target), target)
        if not seen:
            return ActionResult.give_up(
                f"pushed a ban on {target.value} (alert {ids}) but bouncers do not see it: is the scenario in "
                "simulation mode?",
                **data,
                took_effect=False,
            )
        return ActionResult.done(
            f"banned {target.scope} {target.value} for {decision['duration']}; bouncers see it ({_until(seen)})",
            **data,
            took_effect=True,
            decision=dict(seen[0]),
        )

    # -- unban --------------------------------------------------------------------------------------------

    async def unban(self, inputs: UnbanInputs, ctx: ActionContext) -> ActionResult:
        if self.client is None:
            return ActionResult.give_up(NOT_CONFIGURED)
        try:
            target = parse_target(inputs.ip)
        except ValueError as exc:
            return ActionResult.give_up(f"refused before any call: {exc}")
        return await _verdicts(self._unban(self.client, target, ctx))

    async def _unban(self, client: CrowdSecClient, target: BanTarget, ctx: ActionContext) -> ActionResult:
        if ctx.dry_run:
            await client.login(ctx)
            present = await client.active_decisions(ctx, target)
            return ActionResult.done(
                f"dry run: would delete the decisions on {target.value} ({len(present)} apply to it now)",
                value=target.value,
                decisions=[dict(d) for d in present],
            )
        answer = await client.watcher(ctx, "DELETE", "/v1/decisions", params=target.query)
        deleted = _count(answer)
        await ctx.log.ainfo("crowdsec decisions deleted", value=target.value, deleted=deleted)
        data: dict[str, Any] = {"value": target.value, "deleted": deleted}
        if client.has_bouncer:
            left = await client.bouncer_decisions(ctx, target)
            if left:
                return ActionResult.give_up(
                    f"deleted {deleted} decision(s) on {target.value} but {len(left)} still apply to it",
                    **data,
                    remaining=[dict(d) for d in left],
                )
        if deleted == 0:
            return ActionResult.done(f"no decision on {target.value}: nothing to delete", **data)
        return ActionResult.done(f"deleted {deleted} decision(s) on {target.value}", **data)


def _count(answer: Any) -> int:
    """`{"nbDeleted": "1"}`: the LAPI sends the count as a string."""
    try:
        return int(answer.get("nbDeleted", 0)) if isinstance(answer, Mapping) else 0
    except (TypeError, ValueError):
        return 0


async def _verdicts(work: Awaitable[ActionResult]) -> ActionResult:
    try:
        result = await work
    except LapiProblem as problem:
        return problem.verdict
    return result
