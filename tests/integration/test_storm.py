"""Alert storms through a running daemon: every matching alert acted on exactly once while the noise is decided in
batches, and a poison alert (one the store refuses to record) dead-lettered with an escalation while the rest of its
batch is decided, on both stores."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from autoremedy.models.events import EventState
from tests.support.inprocess import RunningDaemon, StartDaemon, fixture_payload, fresh_database
from tests.support.postgres import PostgresServer
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver

FIRING = fixture_payload("firing.json")
ACTING = {"name": "acting", "matchers": ["alertname=DemoAppDown", "tier=acting"], "playbook": "notify"}
FAST = {"poll_interval": "100ms", "retry_backoff": "10ms"}


def notify_playbook(url: str) -> dict[str, Any]:
    return {
        "name": "notify",
        "target": "app/{{ alert.labels.app }}",
        "steps": [{"action": "http.request", "with": {"url": url, "json": {"fp": "{{ alert.fingerprint }}"}}}],
    }


def alerts(count: int, *, acting_every: int) -> list[dict[str, Any]]:
    template = FIRING["alerts"][0]
    made = []
    for index in range(count):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"storm{index:06d}"
        alert["labels"]["app"] = f"app{index}"
        alert["labels"]["tier"] = "acting" if index % acting_every == 0 else "noise"
        made.append(alert)
    return made


async def send(d: RunningDaemon, batch: list[dict[str, Any]]) -> None:
    response = await d.post_alerts({**FIRING, "alerts": batch})
    assert response.status == 200, response.status


@pytest.fixture
async def hook() -> AsyncIterator[RecordingReceiver]:
    receiver = await RecordingReceiver().start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, shared_postgres: PostgresServer) -> str:
    return await fresh_database(shared_postgres) if request.param == "postgres" else "sqlite:///store.db"


async def test_a_storm_acts_on_every_matching_alert_exactly_once(
    start_daemon: StartDaemon, hook: RecordingReceiver, store_url: str
) -> None:
    d = await start_daemon(
        rules=[ACTING],
        playbooks=[notify_playbook(f"{hook.url}/act")],
        extra={
            "store": {"url": store_url},
            "engine": {**FAST, "decide_batch": 200},
            "guardrails": {"breaker": {"max_runs": 100_000}},
            "logging": {"level": "warning"},
        },
    )
    storm = alerts(3000, acting_every=50)
    webhooks = [storm[start : start + 50] for start in range(0, len(storm), 50)]

    async def sender(mine: list[list[dict[str, Any]]]) -> None:
        for webhook in mine:
            await send(d, webhook)

    await asyncio.gather(*(sender(webhooks[offset::8]) for offset in range(8)))  # 8 concurrent senders
    expected = {alert["fingerprint"] for alert in storm if alert["labels"]["tier"] == "acting"}

    async def all_done() -> list[dict[str, Any]] | None:
        runs = await d.runs(limit="1000")
        return runs if len(runs) == len(expected) and all(r["status"] == "succeeded" for r in runs) else None

    runs = await wait_for(all_done, timeout=120, message=lambda: f"{len(hook.requests)} of {len(expected)} acted on")
    await wait_for(lambda: _queue_empty(d), timeout=60, message="every event decided")
    acted = [request.json["fp"] for request in hook.requests_to("/act")]
    assert sorted(acted) == sorted(expected)  # each once: no repeat, none missing
    assert {run["fingerprint"] for run in runs} == expected
    metrics = await (await d.http.get(f"{d.url}/metrics")).text()
    assert f'autoremedy_events_decided_total{{outcome="no_rule_matched"}} {float(3000 - len(expected))}' in metrics
    assert f'autoremedy_events_decided_total{{outcome="runs"}} {float(len(expected))}' in metrics
    assert "autoremedy_decide_batch_size_count" in metrics and "autoremedy_webhook_duration_seconds_count" in metrics


async def _queue_empty(d: RunningDaemon) -> bool:
    status, body = await d.get_json("/api/v1/status")
    return status == 200 and body["queue_depth"] == 0 and body["dead_events"]["count"] == 0


async def refuse_target(d: RunningDaemon, store_url: str, target: str) -> None:
    """Make the store itself refuse one run target, as a constraint would: a write that can never succeed."""
    if store_url.startswith("postgresql"):
        connection = await asyncpg.connect(store_url)
        try:
            await connection.execute(f"ALTER TABLE runs ADD CONSTRAINT poison CHECK (target <> '{target}')")
        finally:
            await connection.close()
        return
    db = sqlite3.connect(d.config_path.parent / store_url.removeprefix("sqlite:///"))
    try:
        db.execute(
            f"CREATE TRIGGER poison BEFORE INSERT ON runs WHEN NEW.target = '{target}' "
            "BEGIN SELECT RAISE(ABORT, 'the store refuses this target'); END"
        )
    finally:
        db.close()


async def test_a_poison_alert_is_dead_lettered_while_the_rest_of_its_batch_is_decided(
    start_daemon: StartDaemon, hook: RecordingReceiver, store_url: str
) -> None:
    d = await start_daemon(
        rules=[ACTING],
        playbooks=[notify_playbook(f"{hook.url}/act")],
        extra={"store": {"url": store_url}, "engine": FAST, "guardrails": {"breaker": {"max_runs": 1000}}},
    )
    await refuse_target(d, store_url, "app/poison")
    batch = alerts(30, acting_every=1)
    batch[7]["labels"]["app"] = "poison"  # its run's target is refused by the store: recording it always fails
    poison = batch[7]["fingerprint"]
    await send(d, batch)  # one webhook: the 30 alerts are claimed and decided as one batch

    await hook.wait_for_requests(29, path="/act", deadline_s=60)

    async def dead() -> dict[str, Any] | None:
        _, body = await d.get_json("/api/v1/status")
        return body if body["dead_events"]["count"] == 1 else None

    status = await wait_for(dead, timeout=60, message="the poison event is dead-lettered")
    (listed,) = status["dead_events"]["latest"]
    assert listed["fingerprint"] == poison and listed["error"]
    assert sorted(r.json["fp"] for r in hook.requests_to("/act")) == sorted(
        a["fingerprint"] for a in batch if a["fingerprint"] != poison
    )
    found = await d.daemon.store.get_event(listed["event_id"])
    assert found is not None and found.state is EventState.DEAD
    entries = await d.daemon.store.fingerprint_audit(poison, limit=10)
    assert [e.kind for e in entries] == ["event_dead_lettered"]
    escalations = [e for e in await d.daemon.store.escalations(limit=50) if e.fingerprint == poison]
    assert [(e.trigger, e.rule) for e in escalations] == [("plan_failed", "acting")]
    metrics = await (await d.http.get(f"{d.url}/metrics")).text()
    assert 'autoremedy_events_decided_total{outcome="dead_lettered"} 1.0' in metrics
    assert all(r["fingerprint"] != poison for r in await d.runs(limit="100"))
    code, output = await cli_status(d)
    assert code == 0, output
    assert "dead-lettered:   1 event(s) could not be decided" in output and poison in output


async def cli_status(d: RunningDaemon) -> tuple[int, str]:
    """`autoremedy status`, as an operator runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autoremedy",
        "--config",
        str(d.config_path),
        "status",
        "--url",
        d.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return int(process.returncode or 0), output.decode()
