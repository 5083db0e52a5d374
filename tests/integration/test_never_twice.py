"""Never twice, never stuck: fenced run ownership on SQLite and PostgreSQL, one daemon per SQLite file, interrupted
runs escalate, supervised loops and an honest /readyz, poison webhooks isolated."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import sqlite3
import string
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec
from autoremedy.actions.registry import default_registry
from autoremedy.app import Daemon, run_until_stopped
from autoremedy.config.settings import EscalationSettings, SlackSettings, load_settings
from autoremedy.decide.escalation import EscalationPolicy
from autoremedy.decide.guardrails import Guard
from autoremedy.models.events import NewEvent
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.rules import Rule
from autoremedy.models.runs import RunStatus
from autoremedy.notify.outbox import Outbox, message_for
from autoremedy.notify.slack import SlackChannel
from autoremedy.observability import Metrics
from autoremedy.store.base import NewRun, RefusedEvents
from autoremedy.store.groupcommit import GroupCommitter
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from tests.support.daemon import DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.inprocess import TOKEN, fixture_payload, write_config
from tests.support.postgres import PostgresServer
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver
from tests.support.slack import SLACK_BOT_TOKEN, FakeSlack
from tests.support.tcpproxy import CuttableProxy

FIRING = fixture_payload("firing.json")
RULE = {"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": "act"}
FAST = {"poll_interval": "200ms", "heartbeat_interval": "200ms", "takeover_after": "1500ms"}
TAKEOVER_AFTER = timedelta(milliseconds=1500)


def act_then_wait_then_act(receiver: RecordingReceiver, pause: str = "3s") -> dict[str, Any]:
    """Two counted calls with a step between them during which the owner loses the store."""
    return {
        "name": "act",
        "target": "app/{{ alert.fingerprint }}",
        "steps": [
            {"name": "first", "action": "http.request", "with": {"url": f"{receiver.url}/first", "json": {}}},
            {"name": "settle", "action": "wait", "timeout": "1m", "with": {"duration": pause}},
            {"name": "last", "action": "http.request", "with": {"url": f"{receiver.url}/last", "json": {}}},
        ],
    }


async def post(http: aiohttp.ClientSession, daemon: DaemonProcess, body: Any) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body)
    async with http.post(f"{daemon.url}/api/v1/alerts", data=data, headers=daemon.headers) as response:
        return response.status


async def run_detail(http: aiohttp.ClientSession, daemon: DaemonProcess) -> dict[str, Any] | None:
    runs = await daemon.runs(http)
    if not runs:
        return None
    async with http.get(f"{daemon.url}/api/v1/runs/{runs[0]['id']}", headers=daemon.headers) as response:
        detail: dict[str, Any] = await response.json()
        return detail


def calls(receiver: RecordingReceiver, path: str) -> int:
    """The calls a receiver that drops repeats by Idempotency-Key acts on (each request, without the header)."""
    requests = receiver.requests_to(path)
    return len({request.headers.get("Idempotency-Key") or id(request) for request in requests})


# -- fencing --------------------------------------------------------------------------------------------------


async def test_postgresql_a_replica_cut_off_from_the_store_loses_its_run_and_each_step_runs_once(
    tmp_path: Path, postgres: PostgresServer, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    dsn = await postgres.create_database("fencing")
    playbook = act_then_wait_then_act(receiver)
    async with CuttableProxy("127.0.0.1", postgres.port) as proxy, aiohttp.ClientSession() as http:
        through_proxy = dsn.replace(f":{postgres.port}/", f":{proxy.port}/")
        common = {"engine": FAST, "guardrails": {"breaker": {"max_runs": 1000}}}
        a_config = write_daemon_config(
            tmp_path / "a", rules=[RULE], playbooks=[playbook], store={"url": through_proxy}, **common
        )
        a = await daemon_processes.start(a_config)
        assert await post(http, a, FIRING) == 200
        dbname = dsn.rsplit("/", 1)[1]

        async def first_recorded() -> bool:
            query = "SELECT outcome FROM run_steps WHERE idx = 0"
            return bool(await postgres.fetchval(query, dbname=dbname) == "done")

        await wait_for(first_recorded, timeout=30, message="a ran and recorded `first`, and is now in `settle`")
        await proxy.cut()  # a loses the store while its step goes on; its heartbeat lapses
        b_config = write_daemon_config(tmp_path / "b", rules=[RULE], playbooks=[playbook], store={"url": dsn}, **common)
        b = await daemon_processes.start(b_config)

        async def succeeded() -> dict[str, Any] | None:
            detail = await run_detail(http, b)
            return detail if detail is not None and detail["status"] == "succeeded" else None

        await wait_for(succeeded, timeout=30, message="b took the run over and finished it")
        await proxy.restore()  # a is back: its writes are refused, its task cancelled

        async def lost() -> dict[str, Any] | None:
            detail = await run_detail(http, b)
            kinds = [entry["kind"] for entry in detail["audit"]] if detail else []
            return detail if "run_lost" in kinds else None

        detail = await wait_for(lost, timeout=30, message="a says it stopped executing the run")
        await wait_for(
            lambda: "run taken over by another instance; stopped here" in a.proc.log_tail(400),
            timeout=10,
            message="a logged that it stopped",
        )
    assert (calls(receiver, "/first"), calls(receiver, "/last")) == (1, 1)
    kinds = [entry["kind"] for entry in detail["audit"]]
    assert kinds.count("run_taken_over") == 1 and kinds.count("run_lost") == 1
    assert [s["outcome"] for s in detail["steps"]] == ["done", "done", "done"]
    assert a.proc.is_running()  # losing a run is not a reason to die


async def test_sqlite_a_heartbeat_gap_longer_than_takeover_after_does_not_run_a_step_twice(
    tmp_path: Path, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    config = write_daemon_config(
        tmp_path,
        rules=[RULE],
        playbooks=[act_then_wait_then_act(receiver, pause="2s")],
        engine=FAST,
        store={"url": "sqlite:///var/autoremedy.db", "busy_timeout": "100ms"},
    )
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        assert await post(http, daemon, FIRING) == 200
        await receiver.wait_for_requests(1, path="/first", deadline_s=30)
        blocker = sqlite3.connect(daemon.db_path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # nobody else writes: the heartbeat fails (a busy or full disk)

            def stale() -> bool:
                reader = sqlite3.connect(f"file:{daemon.db_path}?mode=ro", uri=True)
                try:
                    (beat,) = reader.execute("SELECT heartbeat_at FROM runs").fetchone()
                finally:
                    reader.close()
                return datetime.fromisoformat(beat) < datetime.now(UTC) - TAKEOVER_AFTER - timedelta(seconds=1)

            await wait_for(stale, timeout=30, message="the run's heartbeat older than takeover_after")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        async def finished() -> dict[str, Any] | None:
            detail = await run_detail(http, daemon)
            return detail if detail is not None and detail["finished_at"] else None

        detail = await wait_for(finished, timeout=30, message="the run finished")
    assert detail["status"] == "succeeded"
    assert (calls(receiver, "/first"), calls(receiver, "/last")) == (1, 1)
    assert "run_taken_over" not in [entry["kind"] for entry in detail["audit"]]  # never its own live run
    assert "heartbeat failed: store unavailable" in daemon.proc.log_tail(400)


# -- one daemon per SQLite file ------------------------------------------------------------------------------------


async def test_a_second_daemon_on_the_same_sqlite_file_refuses_to_start(
    tmp_path: Path, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    first = await daemon_processes.start(
        write_daemon_config(tmp_path / "one", rules=[RULE], playbooks=[act_then_wait_then_act(receiver)])
    )
    second_config = write_daemon_config(
        tmp_path / "two",
        rules=[RULE],
        playbooks=[act_then_wait_then_act(receiver)],
        store={"url": f"sqlite:///{first.db_path}"},
    )
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoremedy", "--config", str(second_config), "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(second.communicate(), timeout=30)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    assert second.returncode == 1
    message = err.decode()
    assert f"already in use by another autoremedy process (pid {first.proc.pid})" in message
    assert str(first.db_path) in message
    assert first.proc.is_running()


# -- half-done work ------------------------------------------------------------------------------------------------


async def test_sigterm_cutting_a_run_off_escalates_run_interrupted_once(
    tmp_path: Path, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    config = write_daemon_config(
        tmp_path, rules=[RULE], playbooks=[act_then_wait_then_act(receiver, pause="1h")],
        server={"shutdown_grace": "200ms"},
    )  # fmt: skip
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        assert await post(http, daemon, FIRING) == 200
        await receiver.wait_for_requests(1, path="/first", deadline_s=30)
        assert daemon.proc.stop(timeout=30) == 0
    assert daemon.query_db("SELECT status FROM runs") == [("interrupted",)]
    escalations = daemon.query_db("SELECT trigger, kind, detail FROM escalations")
    assert [(trigger, kind) for trigger, kind, _ in escalations] == [("run_interrupted", "trigger")]
    assert "grace period" in escalations[0][2]


# -- supervised loops, honest readiness ----------------------------------------------------------------------------


class ExplodeInputs(ActionInputs):
    pass


async def explode(inputs: ExplodeInputs, ctx: ActionContext) -> ActionResult:
    # A result the store cannot encode: the failure surfaces in the engine, past the action's own guard.
    return ActionResult.done("done", handle=object())


EXPLODE = ActionSpec("test.explode", ExplodeInputs, explode, "An action with a bug.")


async def _in_process(tmp_path: Path, rules: list[dict[str, Any]], playbooks: list[dict[str, Any]]) -> Daemon:
    config = write_config(tmp_path, rules=rules, playbooks=playbooks, extra={"engine": FAST})
    settings = load_settings(config)
    registry = default_registry(settings)
    registry.register(EXPLODE)
    daemon = Daemon(settings, registry=registry)
    await daemon.start()
    return daemon


def _url(daemon: Daemon) -> str:
    host, port = daemon.settings.server.host_port
    return f"http://{host}:{port}"


async def test_an_action_that_breaks_the_engine_fails_its_run_and_later_alerts_are_processed(
    tmp_path: Path, receiver: RecordingReceiver
) -> None:
    rules = [
        {"name": "broken", "matchers": ["alertname=Broken"], "playbook": "broken"},
        {"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": "act"},
    ]
    playbooks = [
        {"name": "broken", "target": "b/{{ alert.fingerprint }}", "steps": [{"action": "test.explode"}]},
        act_then_wait_then_act(receiver, pause="10ms"),
    ]
    daemon = await _in_process(tmp_path, rules, playbooks)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    broken = copy.deepcopy(FIRING)
    broken["alerts"][0]["labels"]["alertname"] = "Broken"
    broken["alerts"][0]["fingerprint"] = "broken1"
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{_url(daemon)}/api/v1/alerts", json=broken) as response:
                assert response.status == 200

            async def failed() -> list[Any] | None:
                found = await daemon.store.list_runs(status=None, limit=5)
                return found if found and found[0].finished_at else None

            (run,) = await wait_for(failed, timeout=30, message="the broken run finished")
            assert run.status.value == "failed" and "internal error: TypeError" in run.reason
            async with http.post(f"{_url(daemon)}/api/v1/alerts", json=FIRING) as response:
                assert response.status == 200
            await receiver.wait_for_requests(1, path="/last", deadline_s=30)  # the next alert is processed
            async with http.get(f"{_url(daemon)}/readyz") as ready:
                assert ready.status == 200, await ready.text()
        assert daemon.dead_loops == {}
        escalations = await daemon.store.escalations(limit=5)
        assert [(e.run_id, e.trigger) for e in escalations] == [(run.id, "run_failed")]
    finally:
        await daemon.stop()


async def test_a_loop_that_ends_makes_readyz_503_naming_it_and_the_exit_status_non_zero(
    tmp_path: Path, receiver: RecordingReceiver
) -> None:
    daemon = await _in_process(tmp_path, [RULE], [act_then_wait_then_act(receiver)])
    stopped = False
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{_url(daemon)}/readyz") as ready:
                assert ready.status == 200
            daemon.loops()["outbox"].cancel()  # killed on purpose
            await wait_for(daemon.faulted.is_set, timeout=10, message="the supervisor saw it")
            async with http.get(f"{_url(daemon)}/readyz") as ready:
                assert ready.status == 503
                assert (await ready.json())["problems"] == ["loop outbox ended (cancelled)"]
        stopped = True
        assert await asyncio.wait_for(run_until_stopped(daemon, asyncio.Event()), timeout=30) == 1
    finally:
        if not stopped:
            await daemon.stop()


# -- poison webhooks -----------------------------------------------------------------------------------------------


def _alert(index: int, **changes: Any) -> dict[str, Any]:
    alert = copy.deepcopy(FIRING["alerts"][0])
    alert["fingerprint"] = f"ok{index:04d}"
    alert["labels"]["instance"] = f"10.1.0.{index}:9100"
    alert.update(changes)
    return alert


POISONS: dict[str, dict[str, Any]] = {
    "nul-fingerprint": {"fingerprint": "bad\x00fp"},
    "long-fingerprint": {"fingerprint": "".join(random.Random(13).choices(string.ascii_letters, k=9000))},
    "nul-generator-url": {"generatorURL": "http://prometheus/graph?g0.expr=up\x00"},
}


async def post_for(http: aiohttp.ClientSession, daemon: DaemonProcess, body: Any) -> tuple[int, Any]:
    async with http.post(f"{daemon.url}/api/v1/alerts", data=json.dumps(body), headers=daemon.headers) as response:
        return response.status, await response.json()


async def test_postgresql_a_poison_webhook_among_29_valid_ones_is_the_only_one_refused(
    tmp_path: Path, postgres: PostgresServer, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    dsn = await postgres.create_database("poison")
    by_pod = {"name": "by-pod", "matchers": ["alertname=PodDown"], "playbook": "pod"}
    pod = {
        "name": "pod",
        "target": "pod/{{ alert.labels.pod }}",
        "steps": [{"action": "log", "with": {"message": "m"}}],
    }
    config = write_daemon_config(
        tmp_path, rules=[RULE, by_pod], playbooks=[act_then_wait_then_act(receiver, pause="10ms"), pod],
        store={"url": dsn}, engine=FAST, guardrails={"breaker": {"max_runs": 1000}},
    )  # fmt: skip
    daemon = await daemon_processes.start(config)
    async with aiohttp.ClientSession() as http:
        for round_index, (name, poison) in enumerate(POISONS.items()):
            first = round_index * 100
            bodies = [{**FIRING, "alerts": [_alert(first + i)]} for i in range(29)]
            bad = {**FIRING, "alerts": [_alert(first + 99), _alert(first + 98, **poison)]}
            answers = await asyncio.gather(
                *(post_for(http, daemon, body) for body in [*bodies[:15], bad, *bodies[15:]])
            )
            statuses = [status for status, _ in answers]
            assert statuses[:15] + statuses[16:] == [200] * 29, (name, answers)
            assert statuses[15] == 400, (name, answers[15])
            # Refused at the door since issue 12's input checks (naming the field, `alerts.1.fingerprint`), or
            # by the store: either way only the poison alert, and the other alert of its webhook is stored.
            fields = [field["field"] for field in answers[15][1]["fields"]]
            assert [field.split(".")[:2] for field in fields] == [["alerts", "1"]], (name, answers[15])

        await wait_for(
            lambda: len(receiver.requests_to("/last")) == len(POISONS) * 30,  # 29 webhooks + the poison's valid alert
            timeout=60,
            message="every valid alert remediated",
        )
        # A label that is fine to store but not as a target: the run fails as a plan error, people are told.
        hostile = {**FIRING, "alerts": [_alert(900, labels={"alertname": "PodDown", "pod": "x" + "y" * 9000})]}
        assert await post(http, daemon, hostile) == 200

        async def plan_failed() -> dict[str, Any] | None:
            runs = [r for r in await daemon.runs(http) if r["rule"] == "by-pod"]
            return runs[0] if runs and runs[0]["status"] == "failed" else None

        run = await wait_for(plan_failed, timeout=30, message="the hostile alert's run failed as a plan error")
        assert "target: " in run["reason"]
        async with http.get(f"{daemon.url}/readyz") as ready:
            assert ready.status == 200
    escalated = await postgres.fetchval(
        "SELECT string_agg(trigger, ',') FROM escalations WHERE run_id = $1", run["id"], dbname=dsn.rsplit("/", 1)[1]
    )
    assert escalated == "plan_failed"


async def test_postgresql_one_group_commit_refused_for_one_webhook_stores_the_other_29(
    postgres: PostgresServer,
) -> None:
    store = PostgresStore(await postgres.create_database("groupcommit"))
    await store.open()
    committer = GroupCommitter(lambda events: store.insert_events(events, now=datetime.now(UTC)))
    committer.start()
    committed: list[int] = []
    committer.on_commit = committed.append
    try:
        webhooks = [[_event(f"fp{i}")] for i in range(29)]
        webhooks.insert(7, [_event("fine"), _event("bad\x00fp")])
        # All 30 are queued before the writer runs: they share its first batch, which the store refuses.
        answers = await asyncio.gather(*(committer.submit(events) for events in webhooks), return_exceptions=True)
    finally:
        await committer.stop()
        await store.close()
    refused = answers.pop(7)
    assert isinstance(refused, RefusedEvents) and list(refused.refused) == [1] and refused.stored == 1
    assert all(isinstance(answer, list) and len(answer) == 1 for answer in answers), answers
    assert sum(committed) == 30  # 29 webhooks and the poison webhook's valid alert


def _event(fingerprint: str) -> NewEvent:
    alert = FIRING["alerts"][0]
    return NewEvent(
        fingerprint=fingerprint,
        status="firing",
        starts_at=alert["startsAt"],
        ends_at=None,
        labels=alert["labels"],
        annotations=alert["annotations"],
        generator_url="http://g",
        receiver="autoremedy",
        external_url="http://am",
        group_key="{}:{}",
    )


# -- escalations: a repeat after a crash --------------------------------------------------------------------------


async def test_a_slack_escalation_delivered_before_a_crash_is_found_by_its_client_id_and_not_sent_again(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    now = datetime.now(UTC)
    try:
        (stored,) = await store.insert_events([_event("slack1")], now=now)
        alert = await store.get_event(stored.event_id)
        assert alert is not None
        failed = NewRun(
            id="r1", event_id=alert.id, status=RunStatus.FAILED, reason="plan not rendered: x", rule="r",
            playbook="p", target="t", fingerprint=alert.fingerprint, alert_status="firing", dry_run=False,
        )  # fmt: skip
        rules = {"r": Rule.model_validate({"name": "r", "playbook": "p"})}
        guard = Guard(rules=rules, windows=(), settings=GuardrailSettings(), labels={}, now=now)
        await store.record_decision(alert, [failed], [], guard=guard, now=now)  # queues a plan_failed escalation
        async with FakeSlack(channels={"C0ESCALATE"}) as slack:
            settings = SlackSettings(token=SLACK_BOT_TOKEN, channel="C0ESCALATE", base_url=slack.api_url)
            channel = SlackChannel(settings, request_timeout=5)
            policy = EscalationPolicy(
                default=["slack"], by_severity={}, rule_channels={}, configured=frozenset({"slack"})
            )
            outbox = Outbox(
                store=store, channels={"slack": channel}, policy=lambda: policy, settings=EscalationSettings(),
                metrics=Metrics(), poll_interval=1,
            )  # fmt: skip
            await store.fan_out(lambda escalation, event: ["slack"], now=now, limit=10)
            # The first attempt is recorded (claimed, leased) and sent; the daemon dies before recording the answer.
            (first,) = await store.claim_deliveries(now=now, limit=10, lease=timedelta(0))
            assert not first.unrecorded
            sent = await channel.send(message_for(first))
            assert sent.reference is not None

            await outbox.run_once()  # the lease is over: taken up again, found in the channel, not sent twice
            assert len(slack.top_level("C0ESCALATE")) == 1
            (delivery,) = await store.deliveries(limit=5)
            assert (delivery.state, delivery.reference, delivery.attempts) == ("sent", sent.reference, 2)
            await channel.close()
    finally:
        await store.close()
