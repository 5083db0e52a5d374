"""What the daemon is made of, built from settings: one small function per part, wired in `build_components`.

Nothing here starts a task or opens a connection (the HTTP client session is created in the running loop but does
not connect): `Daemon` (app.py) starts, supervises and stops what is built here, in the order it needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from autoremedy.actions.base import ActionRegistry
from autoremedy.actions.registry import default_registry
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.secrets import configured_secrets, templating_for
from autoremedy.config.settings import Settings
from autoremedy.control.credentials import slack_identities
from autoremedy.control.limiter import FailedSignIns
from autoremedy.control.service import ControlService
from autoremedy.decide.guardrails import compile_window
from autoremedy.decide.planning import Ruleset, matching_rules
from autoremedy.decide.redact import register_secrets
from autoremedy.engine.config_watch import FolderWatcher, ReloadStatus
from autoremedy.engine.decider import Decider, DecideSettings
from autoremedy.engine.executor import Executor
from autoremedy.engine.worker import Upkeep, Worker
from autoremedy.ingest.common import Services
from autoremedy.ingest.server import build_app
from autoremedy.models.clock import Clock
from autoremedy.models.events import NewEvent
from autoremedy.notify.channels import build_channels, escalation_policy
from autoremedy.notify.outbox import Outbox
from autoremedy.observability import Metrics
from autoremedy.store.base import InsertOutcome
from autoremedy.store.groupcommit import GroupCommitter
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from autoremedy.store.sqlstore import SqlStore


class ConfigError(Exception):
    """The configuration cannot be used; the message says why."""


class Rules:
    """The rules and playbooks in force: replaced whole by a reload, read by every part through `current`."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.current = ruleset

    def names(self) -> set[str]:
        return {compiled.rule.name for compiled in self.current.rules}


@dataclass(slots=True)
class Foundation:
    """What exists before the event loop runs: settings, the clock, metrics, actions, the store, the rules, the
    group committer. Building it loads and checks the configuration, so a bad one fails before anything starts."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    registry: ActionRegistry
    store: SqlStore
    rules: Rules
    reload_status: ReloadStatus
    committer: GroupCommitter


@dataclass(slots=True)
class Components:
    """Every long-lived part of one daemon, wired to each other and not yet started (built in the running loop)."""

    base: Foundation
    http: aiohttp.ClientSession
    decider: Decider
    worker: Worker
    outbox: Outbox
    control: ControlService
    watcher: FolderWatcher | None
    app: web.Application


def build_foundation(
    settings: Settings, *, registry: ActionRegistry | None = None, clock: Clock = SYSTEM_CLOCK
) -> Foundation:
    register_secrets(configured_secrets(settings))  # masked literally in every record, log and message
    registry = registry or default_registry(settings)
    metrics = Metrics()
    store = open_store(settings)
    rules = Rules(load_rules(settings, registry))
    status = ReloadStatus(metrics.config_last_reload_success, metrics.config_last_reload_success_time)
    status.record(ok=True, now=clock.now())
    committer = build_committer(store, metrics, clock)
    return Foundation(settings, clock, metrics, registry, store, rules, status, committer)


def build_components(
    base: Foundation, *, problems: Callable[[], list[str]], on_rules_changed: Callable[[], Awaitable[object]]
) -> Components:
    """The engine, the escalation sender, the control service and the HTTP app over `base`, wired together."""
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    worker = build_worker(base, build_executor(base, http))
    control = build_control(base, worker)
    parts = Components(
        base=base,
        http=http,
        decider=build_decider(base),
        worker=worker,
        outbox=build_outbox(base),
        control=control,
        watcher=build_watcher(base, on_rules_changed),
        app=build_http_app(base, worker, control, problems),
    )
    wire(parts)
    return parts


def open_store(settings: Settings) -> SqlStore:
    store, takeover = settings.store, settings.engine.takeover_after
    if settings.is_postgres:
        return PostgresStore(store.url, pool_size=store.pool_size, takeover_after=takeover)
    path = settings.sqlite_path
    if path is None:
        raise ConfigError("store.url must be sqlite:///path or postgresql://user@host/db")
    busy_ms = int(store.busy_timeout.total_seconds() * 1000)
    return SQLiteStore(path, synchronous=store.synchronous, busy_timeout_ms=busy_ms, takeover_after=takeover)


def load_rules(settings: Settings, registry: ActionRegistry) -> Ruleset:
    return load_ruleset(
        settings.rules_dir, settings.playbooks_dir, actions=registry.input_models(), templating=templating_for(settings)
    )


def build_committer(store: SqlStore, metrics: Metrics, clock: Clock) -> GroupCommitter:
    async def write(events: Sequence[NewEvent]) -> list[InsertOutcome]:
        return await store.insert_events(events, now=clock.now())

    return GroupCommitter(write, metrics=metrics)


def build_executor(base: Foundation, http: aiohttp.ClientSession) -> Executor:
    return Executor(
        store=base.store,
        registry=base.registry,
        metrics=base.metrics,
        http=http,
        retry_backoff_seconds=base.settings.engine.retry_backoff.total_seconds(),
        clock=base.clock,
    )


def build_worker(base: Foundation, executor: Executor) -> Worker:
    engine, rules = base.settings.engine, base.rules
    return Worker(
        store=base.store,
        executor=executor,
        rules=lambda: rules.current,
        metrics=base.metrics,
        concurrency=engine.concurrency,
        poll_interval=engine.poll_interval.total_seconds(),
        upkeep=Upkeep(heartbeat_interval=engine.heartbeat_interval, retention=base.settings.store.retention),
        clock=base.clock,
    )


def build_decider(base: Foundation) -> Decider:
    settings, registry, rules = base.settings, base.registry, base.rules
    engine, guardrails = settings.engine, settings.guardrails
    return Decider(
        store=base.store,
        rules=lambda: rules.current,
        metrics=base.metrics,
        action_mutates=lambda action: registry[action].mutates if action in registry else True,
        settings=DecideSettings(
            dry_run=settings.dry_run,
            guardrails=guardrails,
            windows=[compile_window(window) for window in guardrails.maintenance_windows],
            batch_size=engine.decide_batch,
            max_attempts=engine.max_decision_attempts,
            poll_interval=engine.poll_interval.total_seconds(),
        ),
        clock=base.clock,
    )


def build_outbox(base: Foundation) -> Outbox:
    settings, rules = base.settings, base.rules
    return Outbox(
        store=base.store,
        channels=build_channels(settings),
        policy=lambda: escalation_policy(settings, rules.current),
        settings=settings.escalation,
        metrics=base.metrics,
        poll_interval=settings.engine.poll_interval.total_seconds(),
        clock=base.clock,
    )


def build_control(base: Foundation, worker: Worker) -> ControlService:
    metrics = base.metrics
    return ControlService(
        store=base.store,
        approvers=base.settings.chatops.approvers,
        rule_names=base.rules.names,
        wake=worker.wake,
        on_denied=lambda run: metrics.runs.labels(run.status.value).inc(),
        instance=base.store.owner,
        clock=base.clock.now,
        config_status=base.reload_status.as_json,
        slack_identities=slack_identities(base.settings.server.auth),
    )


def build_http_app(
    base: Foundation, worker: Worker, control: ControlService, problems: Callable[[], list[str]]
) -> web.Application:
    """The webhook, API, console and chat endpoints. /readyz asks the store, whether a set of rules has loaded,
    and `problems` (the supervisor's: loops that ended)."""
    rules, registry = base.rules, base.registry
    services = Services(
        settings=base.settings,
        store=base.store,
        committer=base.committer,
        metrics=base.metrics,
        is_ready=lambda: base.reload_status.last_success_at is not None,
        problems=problems,
        rule_names=rules.names,
        wake=worker.wake,
        backlog=lambda: base.metrics.backlog.value,
        instance=base.store.owner,
        control=control,
        match_rules=lambda labels: [c.rule.name for c in matching_rules(rules.current, labels, "firing")],
        rules=lambda: {c.rule.name: c.rule for c in rules.current.rules},
        verifies=lambda action: (spec := registry.get(action)) is not None and spec.verifies,
        clock=base.clock,
        sign_ins=FailedSignIns.for_auth(base.settings.server.auth),
    )
    return build_app(services)


def wire(parts: Components) -> None:
    """Who wakes whom: a commit wakes the decider, new runs the worker, outcomes the escalation sender."""
    decider, worker, outbox, metrics = parts.decider, parts.worker, parts.outbox, parts.base.metrics

    def committed(stored: int) -> None:
        metrics.backlog.add(stored)
        decider.wake()

    parts.base.committer.on_commit = committed
    if isinstance(parts.base.store, PostgresStore):
        # Another replica committed events (this one's own NOTIFY is ignored: its commit woke the decider). Only
        # the decider is woken: it hands the worker the runs it made, and a run another replica decided is that
        # replica's worker's, or found by polling.
        parts.base.store.on_notify = decider.wake
    worker.on_outcome = outbox.wake
    decider.on_planned = worker.wake
    decider.runner = worker  # runs a batch made are claimed in its transaction for the worker's free slots
    decider.on_outcome = outbox.wake


def build_watcher(base: Foundation, on_change: Callable[[], Awaitable[object]]) -> FolderWatcher | None:
    settings = base.settings
    watch = settings.rules_watch
    if not watch.enabled:
        return None
    return FolderWatcher(
        [settings.rules_dir, settings.playbooks_dir],
        poll_interval=watch.poll_interval.total_seconds(),
        settle=watch.settle.total_seconds(),
        on_change=on_change,
        errors=base.metrics.loop_errors,
        clock=base.clock,
    )
