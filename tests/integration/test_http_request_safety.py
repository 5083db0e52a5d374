"""http.request against hostile labels, through a running daemon: the host is the playbook's (SSRF refused before
any request, a second loopback address standing for the attacker's target), redirects stay on the host, every
request carries an Idempotency-Key, and no secret reaches the run API, the log or the Slack escalation."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog

from autoremedy.observability import configure_logging
from tests.support.inprocess import RunningDaemon, StartDaemon, fixture_payload
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver
from tests.support.slack import SLACK_BOT_TOKEN, FakeSlack

FAST = {"engine": {"retry_backoff": "10ms", "poll_interval": "50ms"}}
RULE = {"name": "demo", "matchers": ['alertname="DemoAppDown"'], "playbook": "call", "on": "firing"}


@pytest.fixture
async def api() -> AsyncIterator[RecordingReceiver]:
    """The host the playbook means to call."""
    async with RecordingReceiver() as receiver:
        yield receiver


@pytest.fixture
async def other() -> AsyncIterator[RecordingReceiver]:
    """Another host (another loopback address) an attacker would aim at: it must receive nothing."""
    async with RecordingReceiver(host="127.0.0.2") as receiver:
        yield receiver


def call(url: str, **inputs: Any) -> dict[str, Any]:
    return {
        "name": "call",
        "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
        "steps": [{"name": "call", "action": "http.request", "with": {"url": url, **inputs}}],
    }


def firing(**labels: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture_payload("firing.json"))
    alert = body["alerts"][0]
    alert["labels"].update(labels)
    if labels:  # another alert, as Alertmanager would fingerprint it
        alert["fingerprint"] = hashlib.sha256(json.dumps(alert["labels"], sort_keys=True).encode()).hexdigest()[:16]
    return body


async def finished_runs(d: RunningDaemon, count: int = 1) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        runs = [run for run in await d.runs() if run["finished_at"]]
        return runs if len(runs) >= count else None

    runs = await wait_for(done, timeout=15, message=f"{count} finished run(s)")
    full = []
    for run in runs:
        status, body = await d.get_json(f"/api/v1/runs/{run['id']}")
        assert status == 200
        full.append(body)
    return full


SSRF = [
    pytest.param(
        "{api}{{{{ alert.labels.path }}}}",
        {"path": "@{other}/latest/meta-data/"},
        "carries credentials",
        id="label-adds-userinfo",
    ),
    pytest.param(
        "http://{{{{ alert.labels.host }}}}/hook",
        {"host": "{other}"},
        "matches no http.allowed_hosts",
        id="label-is-host",
    ),
    pytest.param(
        "http://127.0.0.1{{{{ alert.labels.port }}}}/hook",
        {"port": ":{other_port}"},
        "matches no http.allowed_hosts",
        id="label-adds-port",
    ),
    pytest.param("http://169.254.169.254/latest/meta-data/", {}, "link-local or cloud metadata", id="metadata-literal"),
    pytest.param(
        "http://{{{{ alert.labels.host }}}}/latest/",
        {"host": "[fd00:ec2::254]"},
        "link-local or cloud metadata",
        id="metadata-ipv6-from-label",
    ),
]


@pytest.mark.parametrize(("template", "labels", "reason"), SSRF)
async def test_a_label_cannot_choose_the_host(
    start_daemon: StartDaemon,
    api: RecordingReceiver,
    other: RecordingReceiver,
    template: str,
    labels: dict[str, str],
    reason: str,
) -> None:
    url = template.format(api=api.url, other=other.host_port)
    d = await start_daemon(rules=[RULE], playbooks=[call(url)], extra=FAST)
    await d.post_alerts(
        firing(**{k: v.format(other=other.host_port, other_port=other.port) for k, v in labels.items()})
    )
    (run,) = await finished_runs(d)
    assert run["status"] == "failed"
    assert reason in run["reason"] and "refused" in run["reason"]
    assert run["steps"][0]["attempts"] == 0  # given up before any request
    assert other.requests == [] and api.requests == []


async def test_allowed_hosts_let_a_template_build_the_host(
    start_daemon: StartDaemon, api: RecordingReceiver, other: RecordingReceiver
) -> None:
    d = await start_daemon(
        rules=[RULE],
        playbooks=[call("http://{{ alert.labels.host }}/hook")],
        extra={**FAST, "http": {"allowed_hosts": [f"127.0.0.1:{api.port}"]}},
    )
    await d.post_alerts(firing(host=api.host_port))
    (run,) = await finished_runs(d)
    assert run["status"] == "succeeded"
    assert len(api.requests_to("/hook")) == 1
    await d.post_alerts(firing(host=other.host_port, instance="second"))
    runs = await finished_runs(d, 2)
    refused = next(run for run in runs if run["status"] == "failed")
    assert "matches no http.allowed_hosts" in refused["reason"]
    assert other.requests == []


async def test_a_label_cannot_append_a_port_to_an_allowed_host(start_daemon: StartDaemon) -> None:
    """`allowed_hosts: [127.0.0.1]` lets a label build that host, not choose another service on it."""
    async with RecordingReceiver() as allowed, RecordingReceiver() as elsewhere:
        d = await start_daemon(
            rules=[RULE],
            playbooks=[call(f"http://{{{{ alert.labels.host }}}}:{allowed.port}/hook")],
            extra={**FAST, "http": {"allowed_hosts": ["127.0.0.1"]}},
        )
        await d.post_alerts(firing(host="127.0.0.1"))
        await d.post_alerts(firing(host=f"127.0.0.1:{elsewhere.port}/#", app="second"))
        runs = await finished_runs(d, 2)
    assert sorted(run["status"] for run in runs) == ["failed", "succeeded"]
    refused = next(run for run in runs if run["status"] == "failed")
    assert f"port {elsewhere.port}" in refused["reason"] and "refused" in refused["reason"]
    assert len(allowed.requests_to("/hook")) == 1 and elsewhere.requests == []


@pytest.mark.parametrize("allow_redirects", [False, True])
async def test_redirects_to_another_host_are_not_followed(
    start_daemon: StartDaemon, api: RecordingReceiver, other: RecordingReceiver, allow_redirects: bool
) -> None:
    api.set_response("/hook", 302, headers={"Location": f"{other.url}/stolen"})
    d = await start_daemon(
        rules=[RULE],
        playbooks=[call(f"{api.url}/hook", headers={"X-Token": "t0ken-value"}, allow_redirects=allow_redirects)],
        extra=FAST,
    )
    await d.post_alerts(firing())
    (run,) = await finished_runs(d)
    assert run["status"] == "failed"
    expected = "another host: not followed" if allow_redirects else "answered 302"
    assert expected in run["reason"]
    assert len(api.requests_to("/hook")) == 1 and other.requests == []


async def test_a_same_host_redirect_is_followed_when_asked(start_daemon: StartDaemon, api: RecordingReceiver) -> None:
    api.set_response("/old", 307, headers={"Location": "/new"})
    d = await start_daemon(
        rules=[RULE], playbooks=[call(f"{api.url}/old", json={"a": 1}, allow_redirects=True)], extra=FAST
    )
    await d.post_alerts(firing())
    (run,) = await finished_runs(d)
    assert run["status"] == "succeeded", run["reason"]
    (moved,) = api.requests_to("/new", "POST")
    assert moved.json == {"a": 1}


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param({}, "{run}.0", id="default-run-id-and-step"),
        pytest.param(
            {"headers": {"idempotency-key": "mine-{{ alert.fingerprint }}"}}, "mine-2211ebba9d7bd2f0", id="own"
        ),
        pytest.param({"idempotency_key": False}, None, id="disabled"),
    ],
)
async def test_idempotency_key(
    start_daemon: StartDaemon, api: RecordingReceiver, inputs: dict[str, Any], expected: str | None
) -> None:
    d = await start_daemon(rules=[RULE], playbooks=[call(f"{api.url}/hook", **inputs)], extra=FAST)
    await d.post_alerts(firing())
    (run,) = await finished_runs(d)
    assert run["status"] == "succeeded", run["reason"]
    (request,) = api.requests_to("/hook")
    sent = request.headers.get("Idempotency-Key")
    assert sent == (expected.format(run=run["id"]) if expected else None)
    assert len(request.headers.getall("Idempotency-Key", [])) == (1 if expected else 0)


async def test_a_templated_yes_is_not_a_boolean(start_daemon: StartDaemon, api: RecordingReceiver) -> None:
    d = await start_daemon(
        rules=[RULE], playbooks=[call(f"{api.url}/hook", allow_redirects="{{ alert.labels.follow }}")], extra=FAST
    )
    await d.post_alerts(firing(follow="yes"))
    (run,) = await finished_runs(d)
    assert run["status"] == "failed"
    assert "allow_redirects" in run["reason"] and "must be true or false" in run["reason"]
    assert api.requests == []


# -- no secret in any message ---------------------------------------------------------------------------------

HOOK_TOKEN = "hk-9f2Qx7LmZp41Rw"
SECRETS = {
    "hook": HOOK_TOKEN,
    "query": "q-SeCrEt-8841",
    "userinfo": "hunter2pw",
    "x-auth": "xauth-0192",
    "x-session": "sess-7781",
    "routing": "rk-55aa",
    "dsn": "dsnpass-3321",
}


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The daemon's JSON log, configured as in production (its processors), written to a buffer."""
    configure_logging(level="debug", fmt="json")
    buffer = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


async def test_no_secret_reaches_the_run_api_the_log_or_slack(
    start_daemon: StartDaemon,
    api: RecordingReceiver,
    fake_slack: FakeSlack,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TT_HOOK_TOKEN", HOOK_TOKEN)
    api.set_response(f"/hook/{HOOK_TOKEN}", 500, "internal error")
    playbook = {
        "name": "call",
        "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
        "steps": [
            {
                "name": "failing-hook",
                "action": "http.request",
                "on_failure": "continue",
                "with": {
                    "url": api.url + '/hook/{{ secret("HOOK_TOKEN") }}?token=' + SECRETS["query"] + "&team=ops",
                    "headers": {
                        "Authorization": 'Bearer {{ secret("HOOK_TOKEN") }}',
                        "X-Auth": SECRETS["x-auth"],
                        "X-Session": SECRETS["x-session"],
                    },
                    "json": {"routing_key": SECRETS["routing"], "dsn": f"postgresql://u:{SECRETS['dsn']}@db/x"},
                },
            },
            {
                "name": "userinfo-hook",
                "action": "http.request",
                "with": {"url": f"http://user:{SECRETS['userinfo']}@{api.host_port}/hook?token={SECRETS['query']}"},
            },
        ],
    }
    extra = {
        **FAST,
        "secrets": {"HOOK_TOKEN": {"env": "TT_HOOK_TOKEN"}},
        "notify": {"slack": {"token": SLACK_BOT_TOKEN, "channel": "C0ONCALL", "base_url": fake_slack.api_url}},
        "escalation": {"default": ["slack"], "retry_initial": "50ms"},
    }
    d = await start_daemon(rules=[RULE], playbooks=[playbook], extra=extra)
    await d.post_alerts(firing())
    (run,) = await finished_runs(d)
    assert run["status"] == "failed"
    (sent,) = api.requests_to(f"/hook/{HOOK_TOKEN}")  # the secrets were really used
    assert sent.headers["Authorization"] == f"Bearer {HOOK_TOKEN}" and sent.query["token"] == SECRETS["query"]
    await fake_slack.wait_for_requests(1, path="/api/chat.postMessage")

    step = run["steps"][0]
    assert step["inputs"]["url"] == f"{api.url}/hook/<redacted>?token=<redacted>&team=<redacted>"
    assert step["inputs"]["headers"] == {
        "Authorization": "<redacted>",
        "X-Auth": "<redacted>",
        "X-Session": "<redacted>",
    }
    assert "answered 500" in step["error"]
    assert "carries credentials" in run["reason"]
    texts = {
        "run API": json.dumps(run),
        "runs list": json.dumps(await d.runs()),
        "log": log_output.getvalue(),
        "Slack": "\n".join(request.body.decode() for request in fake_slack.requests),
    }
    assert "answered 500" in texts["log"] and "remediation failed" in texts["Slack"]
    leaks = [(where, name) for where, text in texts.items() for name, secret in SECRETS.items() if secret in text]
    assert leaks == []
