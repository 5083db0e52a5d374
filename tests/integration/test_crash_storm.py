"""A crash storm: the daemon is killed with SIGKILL 10 times at random moments while 3,000 alerts (300 of them
acting on a local receiver) are delivered by senders that retry like Alertmanager. Afterwards every acting alert
reached the receiver, no acknowledged alert is lost, and no two requests for one alert carry different
Idempotency-Keys (a receiver can drop the repeats a crash between a call and its record causes).

The randomness is seeded; the seed is printed and named in every failure. Re-run one storm with
CRASH_STORM_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.daemon import DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.inprocess import fixture_payload
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver

FIRING = fixture_payload("firing.json")
ALERTS, PER_WEBHOOK, ACTING_EVERY = 3000, 10, 10
KILLS = 10
WEBHOOKS_PER_SECOND = 10  # delivery spans the storm (a restart takes seconds) instead of ending before it


def webhooks() -> tuple[list[dict[str, Any]], set[str]]:
    bodies, acting = [], set()
    template = FIRING["alerts"][0]
    for first in range(0, ALERTS, PER_WEBHOOK):
        body = copy.deepcopy(FIRING)
        body["alerts"] = []
        for index in range(first, first + PER_WEBHOOK):
            alert = copy.deepcopy(template)
            alert["fingerprint"] = f"storm{index:05d}"
            alert["labels"]["instance"] = f"10.2.{index // 250}.{index % 250}:9100"
            if index % ACTING_EVERY == 0:
                alert["labels"]["act"] = "yes"
                acting.add(alert["fingerprint"])
            body["alerts"].append(alert)
        bodies.append(body)
    return bodies, acting


class Senders:
    """Like Alertmanager: each webhook is sent until it gets a 2xx, with a growing pause after a failure."""

    def __init__(self, rng: random.Random) -> None:
        self.url = ""
        self.headers: dict[str, str] = {}
        self._rng = rng
        self.retries = 0

    async def deliver(self, http: aiohttp.ClientSession, body: dict[str, Any], *, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        pause = 0.05
        while True:
            try:
                async with http.post(
                    f"{self.url}/api/v1/alerts", data=json.dumps(body), headers=self.headers
                ) as response:
                    if 200 <= response.status < 300:
                        return
                    assert response.status >= 500 or response.status == 429, await response.text()
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.retries += 1
            await asyncio.sleep(pause * self._rng.uniform(0.5, 1.5))
            pause = min(pause * 2, 1.0)


async def test_kill_9_ten_times_while_alerts_arrive_acts_on_every_acting_alert_with_one_key_each(
    tmp_path: Path, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    seed = int(os.environ.get("CRASH_STORM_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"crash storm seed: {seed} (re-run with CRASH_STORM_SEED={seed})")
    rng = random.Random(seed)
    playbook = {
        "name": "act",
        "target": "alert/{{ alert.fingerprint }}",
        "steps": [
            {
                "name": "call",
                "action": "http.request",
                "with": {"url": f"{receiver.url}/act", "json": {"fingerprint": "{{ alert.fingerprint }}"}},
            }
        ],
    }
    config = write_daemon_config(
        tmp_path,
        rules=[{"name": "act", "matchers": ["alertname=DemoAppDown", "act=yes"], "playbook": "act"}],
        playbooks=[playbook],
        engine={"poll_interval": "100ms", "concurrency": 8},
        guardrails={"breaker": {"max_runs": 100_000}},
        logging={"level": "info"},
    )
    bodies, acting = webhooks()
    senders = Senders(rng)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        daemon = await daemon_processes.start(config)
        senders.url, senders.headers = daemon.url, daemon.headers
        start = time.monotonic()
        delivery = asyncio.gather(
            *(senders.deliver(http, body, at=start + i / WEBHOOKS_PER_SECOND) for i, body in enumerate(bodies))
        )
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.1, 1.0))  # the random moment of the crash
            daemon.proc.kill9()
            daemon = await daemon_processes.start(config)  # same port, same file: the senders find it again
        await asyncio.wait_for(delivery, timeout=120)

        def acted_on() -> set[str]:
            return {request.json["fingerprint"] for request in receiver.requests_to("/act")}

        await wait_for(
            lambda: acted_on() >= acting,
            timeout=60,
            message=lambda: f"seed {seed}: {len(acting - acted_on())} acting alerts never reached the receiver",
        )
        await wait_for(lambda: _all_runs_final(daemon), timeout=30, message=f"seed {seed}: runs left unfinished")

    keys: dict[str, set[str | None]] = defaultdict(set)
    for request in receiver.requests_to("/act"):
        keys[request.json["fingerprint"]].add(request.headers.get("Idempotency-Key"))
    assert acted_on() == acting, f"seed {seed}"
    differing = {fingerprint: found for fingerprint, found in keys.items() if len(found) != 1}
    assert differing == {}, f"seed {seed}: requests for one alert with different Idempotency-Keys"
    assert all(None not in found for found in keys.values()), f"seed {seed}: a request without Idempotency-Key"
    repeats = len(receiver.requests_to("/act")) - len(acting)
    print(f"crash storm: {repeats} repeated call(s) after a kill, each with its original Idempotency-Key")
    stored = {row[0] for row in daemon.query_db("SELECT DISTINCT fingerprint FROM events")}
    assert len(stored) == ALERTS, f"seed {seed}: {ALERTS - len(stored)} acknowledged alerts lost"
    runs = daemon.query_db("SELECT fingerprint, status FROM runs")
    assert sorted(fingerprint for fingerprint, _ in runs) == sorted(acting), f"seed {seed}: one run per alert"
    assert {status for _, status in runs} == {"succeeded"}, f"seed {seed}"
    assert senders.retries > 0, f"seed {seed}: no webhook was ever refused: the kills proved nothing"


async def _all_runs_final(daemon: DaemonProcess) -> bool:
    unfinished = daemon.query_db("SELECT count(*) FROM runs WHERE finished_at IS NULL")[0][0]
    pending = daemon.query_db("SELECT count(*) FROM events WHERE state IN ('pending', 'processing')")[0][0]
    return unfinished == 0 and pending == 0
