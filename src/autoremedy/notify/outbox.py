"""The escalation sender: fans new escalations out to channels, then sends due deliveries from the store.

Escalations are written in the same transaction as the outcome that causes them, so none is lost; each delivery
is sent until it succeeds (429, 5xx and unreachable services are retried with backoff, honouring Retry-After) or a
channel refuses it for good (other 4xx: the error is kept). A crash mid-send leaves a leased delivery that is
taken up again when the lease ends.

Each attempt is recorded (claimed, leased) before the call, and carries the delivery's client-side id. A delivery
taken up again after an unrecorded attempt may have been delivered: a channel that can look for its own messages
(Slack, by the id in the message's metadata) is asked first, and the delivery is recorded as sent when it is found.
PagerDuty and Opsgenie need no lookup: they deduplicate by the alert's dedup key themselves.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from autoremedy.background import BackgroundLoop
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.config.settings import EscalationSettings
from autoremedy.decide.escalation import About, EscalationPolicy, channels_for, notification
from autoremedy.models.clock import Clock
from autoremedy.models.events import AlertEvent
from autoremedy.models.notifications import Notification, SendOutcome, SendResult
from autoremedy.notify.base import Channel
from autoremedy.observability import Metrics, get_logger
from autoremedy.store.base import ClaimedDelivery, Escalation, Store, StoreUnavailable

log = get_logger("autoremedy.notify")
LEASE = timedelta(minutes=2)
BATCH = 20
MAX_CRASHING_ATTEMPTS = 5
"""A delivery whose handling raised (a bug in rendering or an adapter) this many times is given up, not retried
forever; refused or unreachable channels are retried with backoff as long as it takes."""


@runtime_checkable
class FindsSent(Protocol):
    async def find_sent(self, client_id: str, *, since: datetime) -> str | None:
        """The reference of a message this client id was delivered with since then, or None."""


class Outbox:
    def __init__(
        self,
        *,
        store: Store,
        channels: Mapping[str, Channel],
        policy: Callable[[], EscalationPolicy],
        settings: EscalationSettings,
        metrics: Metrics,
        poll_interval: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._channels = channels
        self._policy = policy
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._loop = BackgroundLoop(
            "outbox", self._turn, poll_interval=poll_interval, errors=metrics.loop_errors, clock=clock
        )

    def wake(self) -> None:
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._loop.task

    async def stop(self) -> None:
        await self._loop.stop(grace=0)
        for channel in self._channels.values():
            await channel.close()

    async def _turn(self) -> None:
        try:
            await self.run_once()
        except StoreUnavailable as exc:
            await log.aerror("store unavailable; escalations wait in the outbox", error=str(exc))

    async def run_once(self) -> None:
        now = self._clock.now()
        if not await self._store.outbox_has_work(now=now):  # a read: most wake-ups find nothing to send
            return
        policy = self._policy()
        for escalation_id, channels in await self._store.fan_out(
            lambda e, ev: _choose(policy, e, ev), now=now, limit=BATCH
        ):
            if not channels:
                await log.awarning("escalation has no configured channel", escalation_id=escalation_id)
        claimed = await self._store.claim_deliveries(now=now, limit=BATCH, lease=LEASE)
        outcomes = await asyncio.gather(*(self._deliver(delivery) for delivery in claimed), return_exceptions=True)
        for outcome in outcomes:  # every delivery had its turn; one that could not be recorded stays leased
            if isinstance(outcome, BaseException):
                raise outcome

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        channel = self._channels.get(delivery.channel)
        if channel is None:
            await self._store.delivery_failed(delivery.id, error=f"channel {delivery.channel!r} is not configured")
            return
        try:
            message = message_for(delivery)
            result = await self._sent_before(channel, delivery) or await channel.send(message)
        except Exception as exc:  # a bug in rendering or an adapter must not lose the delivery: retry, then give up
            await log.aexception("sending an escalation raised", channel=delivery.channel, attempt=delivery.attempts)
            result = SendResult(_after_crash(delivery.attempts), error=f"internal error: {type(exc).__name__}: {exc}")
        await self._record(delivery, result)

    async def _sent_before(self, channel: Channel, delivery: ClaimedDelivery) -> SendResult | None:
        if not delivery.unrecorded or not isinstance(channel, FindsSent):
            return None
        since = delivery.escalation.created_at
        reference = await channel.find_sent(delivery.client_id, since=since)
        if reference is None:
            return None
        await log.awarning("escalation delivered before a crash; not sent again", channel=delivery.channel)
        return SendResult(SendOutcome.SENT, reference=reference)

    async def _record(self, delivery: ClaimedDelivery, result: SendResult) -> None:
        fields = {
            "channel": delivery.channel,
            "escalation_id": delivery.escalation.id,
            "trigger": delivery.escalation.trigger,
            "attempt": delivery.attempts,
        }
        if result.outcome is SendOutcome.SENT:
            await self._store.delivery_sent(delivery.id, reference=result.reference, now=self._clock.now())
            self._metrics.escalations_sent.labels(delivery.channel, delivery.escalation.kind).inc()
            await log.ainfo("escalation sent", **fields)
            return
        self._metrics.escalation_failures.labels(delivery.channel, result.outcome.value).inc()
        error = result.error or "no detail"
        if result.outcome is SendOutcome.GIVE_UP:
            await self._store.delivery_failed(delivery.id, error=error)
            await log.aerror("escalation refused by the channel; given up", error=error, **fields)
            return
        wait = self._backoff(delivery.attempts, result.retry_after)
        await self._store.delivery_retry(delivery.id, error=error, next_attempt_at=self._clock.now() + wait)
        await log.aerror("escalation not delivered; will retry", error=error, retry_in=wait.total_seconds(), **fields)

    def _backoff(self, attempts: int, retry_after: float | None) -> timedelta:
        if retry_after is not None:
            return timedelta(seconds=max(retry_after, 0.0))
        initial, ceiling = self._settings.retry_initial, self._settings.retry_max
        wait: timedelta = min(initial * (2 ** max(attempts - 1, 0)), ceiling)
        return wait


def message_for(delivery: ClaimedDelivery) -> Notification:
    message = notification(_about(delivery), thread_reference=delivery.thread_reference)
    return dataclasses.replace(message, client_id=delivery.client_id)


def _after_crash(attempts: int) -> SendOutcome:
    return SendOutcome.GIVE_UP if attempts >= MAX_CRASHING_ATTEMPTS else SendOutcome.RETRY


def _choose(policy: EscalationPolicy, escalation: Escalation, event: AlertEvent | None) -> list[str]:
    severity = event.labels.get("severity") if event is not None else None
    return channels_for(policy, trigger=escalation.trigger, rule=escalation.rule, severity=severity)


def _about(delivery: ClaimedDelivery) -> About:
    event, escalation = delivery.event, delivery.escalation
    return About(
        kind=escalation.kind,
        trigger=escalation.trigger,
        detail=escalation.detail,
        fingerprint=escalation.fingerprint,
        rule=escalation.rule,
        run=delivery.run,
        labels=event.labels if event else {},
        annotations=event.annotations if event else {},
        generator_url=event.generator_url if event else "",
        alert_status=event.status if event else "firing",
    )
