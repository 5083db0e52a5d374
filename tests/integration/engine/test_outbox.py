"""The escalation sender on a manual clock over a real SQLite store: a delivery retried after the Retry-After the
channel asked for, then after a doubling backoff, then given up when the channel refuses it for good."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from autoremedy.config.settings import EscalationSettings
from autoremedy.decide.escalation import EscalationPolicy
from autoremedy.models.notifications import Notification, SendOutcome, SendResult
from autoremedy.notify.outbox import Outbox
from tests.support.engine_parts import Engine, engine_parts, event
from tests.support.procs import wait_for

PLAYBOOKS = [{"name": "poison", "target": "{{ alert.fingerprint }}", "steps": [{"action": "test.other"}]}]
POLICY = EscalationPolicy(default=["chat"], by_severity={}, rule_channels={}, configured=frozenset({"chat"}))


@dataclass
class ScriptedChannel:
    """A chat service at the edge: answers what the test scripted and keeps what it was sent."""

    answers: list[SendResult]
    name: str = "chat"
    sent: list[Notification] = field(default_factory=list)

    async def send(self, notification: Notification) -> SendResult:
        self.sent.append(notification)
        return self.answers.pop(0)

    async def close(self) -> None:
        return None


def _buggy(action: str) -> bool:
    raise RuntimeError("a bug in deciding")  # dead-letters the event: a plan_failed escalation to send


async def _outbox(engine: Engine, channel: ScriptedChannel) -> Outbox:
    await engine.store.insert_events([event("poison")], now=engine.clock.now())
    await engine.decider.decide_batch()
    settings = EscalationSettings(retry_initial=timedelta(seconds=1), retry_max=timedelta(minutes=10))
    return Outbox(
        store=engine.store, channels={"chat": channel}, policy=lambda: POLICY, settings=settings,
        metrics=engine.metrics, poll_interval=2.0, clock=engine.clock,
    )  # fmt: skip


async def test_a_delivery_waits_for_retry_after_then_backs_off_then_is_given_up_when_refused(tmp_path: Path) -> None:
    channel = ScriptedChannel(
        [
            SendResult(SendOutcome.RETRY, error="429 slow down", retry_after=30),
            SendResult(SendOutcome.RETRY, error="503 unavailable"),
            SendResult(SendOutcome.GIVE_UP, error="404 channel_not_found"),
        ]
    )
    async with engine_parts(tmp_path, PLAYBOOKS, action_mutates=_buggy) as engine:
        outbox = await _outbox(engine, channel)
        await outbox.run_once()
        assert len(channel.sent) == 1
        await engine.clock.advance(29.9)
        await outbox.run_once()
        assert len(channel.sent) == 1  # Retry-After: 30 is honoured
        await engine.clock.advance(0.1)
        await outbox.run_once()
        assert len(channel.sent) == 2
        await engine.clock.advance(1.9)
        await outbox.run_once()
        assert len(channel.sent) == 2  # no Retry-After this time: 1 s doubled for the second attempt
        await engine.clock.advance(0.1)
        await outbox.run_once()
        assert len(channel.sent) == 3
        (delivery,) = await engine.store.deliveries(limit=5)
        assert (delivery.state, delivery.attempts, delivery.trigger) == ("failed", 3, "plan_failed")
        assert delivery.last_error == "404 channel_not_found"
        await engine.clock.advance(3600)
        await outbox.run_once()
        assert len(channel.sent) == 3  # given up: never sent again


async def test_the_outbox_loop_sends_a_due_retry_at_its_next_poll_on_the_clock(tmp_path: Path) -> None:
    channel = ScriptedChannel(
        [SendResult(SendOutcome.RETRY, error="429", retry_after=5), SendResult(SendOutcome.SENT, reference="m1")]
    )
    async with engine_parts(tmp_path, PLAYBOOKS, action_mutates=_buggy) as engine:
        outbox = await _outbox(engine, channel)
        outbox.start()
        try:
            await wait_for(lambda: len(channel.sent) == 1, timeout=10, message="first attempt")
            await engine.clock.sleeping(2.0)
            for _ in range(2):  # the polls at 2 s and 4 s find nothing due
                await engine.clock.advance(2.0)
                await engine.clock.sleeping(2.0)
                assert len(channel.sent) == 1
            await engine.clock.advance(2.0)  # the one at 6 s sends the retry
            await wait_for(lambda: len(channel.sent) == 2, timeout=10, message="the retry went out")
            (delivery,) = await engine.store.deliveries(limit=5)
            assert (delivery.state, delivery.reference) == ("sent", "m1")
        finally:
            await outbox.stop()
