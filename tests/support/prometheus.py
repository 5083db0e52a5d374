"""Real Prometheus 2.42 and Alertmanager 0.25 on free loopback ports, for end-to-end tests.

See /work/shared/design/LOCAL-SERVICES.md. Tuned for the tightest loop: scrape/eval every 100 ms,
``group_wait: 0s``, ``group_interval: 100ms``, ``--rules.alert.resend-delay=1s``. ``start_prometheus``
returns only once Prometheus lists the Alertmanager as active (about 5 s after start): alerts fired before
that are dropped silently.

Binaries come from ``$PROMETHEUS_BIN`` / ``$ALERTMANAGER_BIN`` or ``PATH``
(``prometheus``, ``prometheus-alertmanager`` or ``alertmanager``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import yaml

from .ports import free_port
from .procs import ManagedProcess, ProcessNotReady, wait_for

STARTUP_TIMEOUT_S = 30.0
_PORT_ATTEMPTS = 3


def _binary(env_var: str, *names: str) -> str:
    override = os.environ.get(env_var)
    if override:
        return override
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        f"none of {names} on PATH (set ${env_var}); "
        "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"
    )


def _write_yaml(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def _start_on_free_port(
    build: Callable[[int], ManagedProcess], ready_path: str, deadline_s: float
) -> ManagedProcess:
    """Start ``build(port)`` and wait for ``ready_path``; retry on another port if the port was taken.

    The process is stopped if it does not become ready, so a failed start leaves nothing behind.
    """
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        proc = build(free_port()).start()
        try:
            await proc.wait_http_ok(f"{proc.base_url}{ready_path}", deadline_s)
        except ProcessNotReady as exc:
            proc.stop()
            if "address already in use" in exc.log_tail and attempt < _PORT_ATTEMPTS:
                continue
            raise
        except BaseException:
            proc.stop()
            raise
        return proc
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------------------------------------


def alertmanager_config(
    *,
    webhook_url: str,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    receiver_name: str = "autoremedy",
) -> dict[str, Any]:
    if bearer_token is not None and basic_auth is not None:
        raise ValueError("Alertmanager accepts bearer_token or basic_auth, not both")
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if bearer_token is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    elif basic_auth is not None:
        webhook["http_config"] = {"basic_auth": {"username": basic_auth[0], "password": basic_auth[1]}}
    return {
        "route": {
            "receiver": receiver_name,
            "group_by": ["alertname", "namespace"],
            "group_wait": "0s",
            "group_interval": "100ms",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": receiver_name, "webhook_configs": [webhook]}],
    }


async def start_alertmanager(
    tmpdir: Path,
    *,
    webhook_url: str,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    receiver_name: str = "autoremedy",
    extra_args: Sequence[str] = (),
    deadline_s: float = STARTUP_TIMEOUT_S,
) -> ManagedProcess:
    """Start Alertmanager (gossip off) in ``tmpdir`` and wait for ``/-/ready``; ``.base_url`` is set."""
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    config = tmpdir / "am.yml"
    _write_yaml(
        config,
        alertmanager_config(
            webhook_url=webhook_url,
            bearer_token=bearer_token,
            basic_auth=basic_auth,
            receiver_name=receiver_name,
        ),
    )
    binary = _binary("ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager")

    def build(port: int) -> ManagedProcess:
        return ManagedProcess(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmpdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                *extra_args,
            ],
            log_dir=tmpdir,
            name="alertmanager",
            cwd=tmpdir,
            base_url=f"http://127.0.0.1:{port}",
        )

    return await _start_on_free_port(build, "/-/ready", deadline_s)


# --------------------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------------------


def _scrape_configs(targets: Sequence[str], job_name: str) -> list[dict[str, Any]]:
    """Targets are ``host:port`` or URLs (``http://host:port/path``); one job per (scheme, path)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        if "://" in target:
            parts = urlsplit(target)
            key = (parts.scheme, parts.path or "/metrics")
            groups.setdefault(key, []).append(parts.netloc)
        else:
            groups.setdefault(("http", "/metrics"), []).append(target)
    jobs: list[dict[str, Any]] = []
    for i, ((scheme, path), hosts) in enumerate(groups.items()):
        jobs.append(
            {
                "job_name": job_name if i == 0 else f"{job_name}-{i}",
                "scheme": scheme,
                "metrics_path": path,
                "static_configs": [{"targets": hosts}],
            }
        )
    return jobs


def prometheus_config(
    *, scrape_targets: Sequence[str], alertmanager_url: str | None, rule_file: str, job_name: str = "demo"
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "100ms", "evaluation_interval": "100ms"},
        "rule_files": [rule_file],
        "scrape_configs": _scrape_configs(scrape_targets, job_name),
    }
    if alertmanager_url is not None:
        am = urlsplit(alertmanager_url)
        am_config: dict[str, Any] = {"scheme": am.scheme or "http", "static_configs": [{"targets": [am.netloc]}]}
        if am.path.strip("/"):
            am_config["path_prefix"] = am.path
        config["alerting"] = {"alertmanagers": [am_config]}
    return config


async def start_prometheus(
    tmpdir: Path,
    *,
    scrape_targets: Sequence[str],
    alertmanager_url: str | None,
    rules_yaml: str,
    job_name: str = "demo",
    wait_targets_up: bool = True,
    extra_args: Sequence[str] = (),
    deadline_s: float = STARTUP_TIMEOUT_S,
) -> ManagedProcess:
    """Start Prometheus in ``tmpdir``; return once it is ready AND sends to ``alertmanager_url``.

    With ``wait_targets_up`` (default) it also waits until every scrape target has been scraped
    successfully, so a test can flip a gauge right away. ``.base_url`` is set.
    """
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    rules = tmpdir / "rules.yml"
    rules.write_text(rules_yaml)
    config = tmpdir / "prom.yml"
    _write_yaml(
        config,
        prometheus_config(
            scrape_targets=scrape_targets,
            alertmanager_url=alertmanager_url,
            rule_file=str(rules),
            job_name=job_name,
        ),
    )
    binary = _binary("PROMETHEUS_BIN", "prometheus")

    def build(port: int) -> ManagedProcess:
        return ManagedProcess(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmpdir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--rules.alert.resend-delay=1s",
                "--web.enable-lifecycle",
                *extra_args,
            ],
            log_dir=tmpdir,
            name="prometheus",
            cwd=tmpdir,
            base_url=f"http://127.0.0.1:{port}",
        )

    proc = await _start_on_free_port(build, "/-/ready", deadline_s)
    try:
        deadline = time.monotonic() + deadline_s
        if alertmanager_url is not None:  # None: Prometheus alone, for queries
            await wait_until_alertmanager_active(proc, alertmanager_url, deadline_s=deadline - time.monotonic())
        if wait_targets_up and scrape_targets:
            await wait_until_targets_up(proc, len(scrape_targets), deadline_s=deadline - time.monotonic())
    except BaseException:
        proc.stop()
        raise
    return proc


# --------------------------------------------------------------------------------------------------------
# Prometheus HTTP API helpers
# --------------------------------------------------------------------------------------------------------


async def prometheus_api(base_url: str, path: str, **params: str) -> Any:
    """GET ``/api/v1/<path>`` and return its ``data`` (raises on a non-success answer)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(f"{base_url}/api/v1/{path}", params=params) as resp,
    ):
        payload = await resp.json()
    if payload.get("status") != "success":
        raise RuntimeError(f"Prometheus /api/v1/{path}: {json.dumps(payload)[:500]}")
    return payload["data"]


async def prometheus_query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """Instant query; returns the vector (``[{"metric": {...}, "value": [ts, "1"]}, ...]``)."""
    data = await prometheus_api(base_url, "query", query=expr)
    result: list[dict[str, Any]] = data["result"]
    return result


async def active_alertmanagers(base_url: str) -> list[str]:
    data = await prometheus_api(base_url, "alertmanagers")
    return [am["url"] for am in data.get("activeAlertmanagers", [])]


async def _alive_and(proc: ManagedProcess, check: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``check`` unless ``proc`` died (then raise with its log); API errors count as not yet."""
    if not proc.is_running():
        raise ProcessNotReady(f"{proc.name} exited with {proc.returncode}", log_tail=proc.log_tail())
    try:
        return await check()
    except (aiohttp.ClientError, TimeoutError, RuntimeError):
        return None


async def wait_until_alertmanager_active(
    prometheus: ManagedProcess, alertmanager_url: str, *, deadline_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Wait until Prometheus' ``/api/v1/alertmanagers`` lists ``alertmanager_url`` as active."""
    base = _base_url(prometheus)
    prefix = alertmanager_url.rstrip("/") + "/"
    seen: list[str] = []

    async def check() -> bool:
        seen[:] = await active_alertmanagers(base)
        return any(url.startswith(prefix) for url in seen)

    await wait_for(
        lambda: _alive_and(prometheus, check),
        timeout=deadline_s,
        interval=0.1,
        message=lambda: (
            f"Prometheus never listed {alertmanager_url} as active (saw {seen})\n"
            f"--- prometheus log ---\n{prometheus.log_tail()}"
        ),
    )


async def wait_until_targets_up(
    prometheus: ManagedProcess, count: int, *, deadline_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Wait until at least ``count`` active targets report health ``up``."""
    base = _base_url(prometheus)
    seen: list[dict[str, Any]] = []

    async def check() -> bool:
        data = await prometheus_api(base, "targets", state="active")
        seen[:] = data.get("activeTargets", [])
        return sum(1 for t in seen if t.get("health") == "up") >= count

    await wait_for(
        lambda: _alive_and(prometheus, check),
        timeout=deadline_s,
        interval=0.05,
        message=lambda: (
            "scrape targets not up: "
            + json.dumps([(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in seen])
        ),
    )


def _base_url(proc: ManagedProcess) -> str:
    if proc.base_url is None:
        raise ValueError(f"{proc.name} has no base_url")
    return proc.base_url


# --------------------------------------------------------------------------------------------------------
# The pair
# --------------------------------------------------------------------------------------------------------


@dataclass
class PromStack:
    alertmanager: ManagedProcess
    prometheus: ManagedProcess
    tmpdir: Path

    @property
    def alertmanager_url(self) -> str:
        return _base_url(self.alertmanager)

    @property
    def prometheus_url(self) -> str:
        return _base_url(self.prometheus)

    async def query(self, expr: str) -> list[dict[str, Any]]:
        return await prometheus_query(self.prometheus_url, expr)

    def stop(self) -> None:
        """Prometheus first (so it does not complain about a vanished Alertmanager), then Alertmanager."""
        try:
            self.prometheus.stop()
        finally:
            self.alertmanager.stop()

    def log_tails(self, n: int = 40) -> str:
        return (
            f"--- alertmanager ({self.alertmanager.log_path}) ---\n{self.alertmanager.log_tail(n)}\n"
            f"--- prometheus ({self.prometheus.log_path}) ---\n{self.prometheus.log_tail(n)}"
        )


async def start_stack(
    tmpdir: Path,
    *,
    webhook_url: str,
    rules_yaml: str,
    scrape_targets: Sequence[str] = (),
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    deadline_s: float = STARTUP_TIMEOUT_S,
) -> PromStack:
    """Alertmanager (webhook -> ``webhook_url``), then Prometheus sending to it. Stops both on failure."""
    tmpdir = Path(tmpdir)
    am = await start_alertmanager(
        tmpdir / "alertmanager",
        webhook_url=webhook_url,
        bearer_token=bearer_token,
        basic_auth=basic_auth,
        deadline_s=deadline_s,
    )
    try:
        prom = await start_prometheus(
            tmpdir / "prometheus",
            scrape_targets=scrape_targets,
            alertmanager_url=_base_url(am),
            rules_yaml=rules_yaml,
            deadline_s=deadline_s,
        )
    except BaseException:
        am.stop()
        raise
    return PromStack(alertmanager=am, prometheus=prom, tmpdir=tmpdir)


__all__ = [
    "PromStack",
    "active_alertmanagers",
    "alertmanager_config",
    "prometheus_api",
    "prometheus_config",
    "prometheus_query",
    "start_alertmanager",
    "start_prometheus",
    "start_stack",
    "wait_until_alertmanager_active",
    "wait_until_targets_up",
]


def demo_down_rules(*, runbook_url: str | None = None) -> str:
    """Prometheus rules for the tests' DemoAppDown alert: `demo_healthy == 0` fires at once, severity critical."""
    runbook = f"\n          runbook_url: {runbook_url}" if runbook_url else ""
    return f"""
groups:
  - name: demo
    rules:
      - alert: DemoAppDown
        expr: demo_healthy == 0
        for: 0s
        labels:
          severity: critical
        annotations:
          summary: "{{{{ $labels.app }}}} unhealthy"{runbook}
"""


class PromStackFactory(Protocol):
    """The `prom_stack` fixture: starts Alertmanager + Prometheus in the test's tmp_path; stopped at teardown."""

    async def __call__(
        self,
        *,
        webhook_url: str,
        rules_yaml: str,
        scrape_targets: Sequence[str] = (),
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        deadline_s: float = STARTUP_TIMEOUT_S,
    ) -> PromStack: ...
