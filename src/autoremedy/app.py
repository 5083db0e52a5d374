"""Composition root: settings -> store, actions, worker, HTTP server; start, reload, drain and stop.

The long-lived tasks (group commit, worker, heartbeat, outbox) are supervised: each catches what goes wrong with
one item and goes on; if one ends anyway, /readyz names it, the daemon shuts down and the process exits non-zero,
so Kubernetes (or systemd) restarts it rather than leaving a daemon that acknowledges alerts and never acts.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import aiohttp
from aiohttp import web

from autoremedy.actions.base import ActionRegistry
from autoremedy.actions.registry import default_registry
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.secrets import configured_secrets, templating_for
from autoremedy.config.settings import Settings
from autoremedy.config.yamlfile import FileProblems
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
from autoremedy.models.events import NewEvent
from autoremedy.notify.channels import build_channels, escalation_policy
from autoremedy.notify.outbox import Outbox
from autoremedy.observability import Metrics, get_logger
from autoremedy.store.base import InsertOutcome
from autoremedy.store.groupcommit import GroupCommitter
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from autoremedy.store.sqlstore import SqlStore

log = get_logger("autoremedy")
RESTART_REASON = "the daemon stopped while the run was in progress (crash or kill); not resumed"


class ConfigError(Exception):
    """The configuration cannot be used; the message says why."""


class StoreInUse(ConfigError):
    """Another process already uses this SQLite file."""


class FileLock:
    """An exclusive flock on a sidecar file next to the SQLite database, holding the owner's pid.

    SQLite itself would let a second daemon share the file, and each would run the other's work (both think they
    are alone: `solo`). The kernel releases a flock when its process dies, even on kill -9, so a stale lock file
    never blocks a restart.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreInUse(
                f"{self.path.with_suffix('')}: already in use by another autoremedy process (pid {holder}); "
                "one SQLite file serves one daemon: stop the other one, or use PostgreSQL for replicas"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the last descriptor releases the flock
            self._file = None


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


class Daemon:
    def __init__(self, settings: Settings, *, registry: ActionRegistry | None = None) -> None:
        self.settings = settings
        register_secrets(configured_secrets(settings))  # masked literally in every record, log and message
        self.registry = registry or default_registry(settings)
        self.metrics = Metrics()
        self.store = open_store(settings)
        self.ruleset = load_rules(settings, self.registry)
        self.reload_status = ReloadStatus(
            self.metrics.config_last_reload_success, self.metrics.config_last_reload_success_time
        )
        self.reload_status.record(ok=True, now=datetime.now(UTC))
        self._watcher: FolderWatcher | None = None
        self._http: aiohttp.ClientSession | None = None
        self._committer = GroupCommitter(self._write_events, metrics=self.metrics)
        self._worker: Worker | None = None
        self._decider: Decider | None = None
        self._outbox: Outbox | None = None
        self._runner: web.AppRunner | None = None
        self._lock = FileLock(settings.sqlite_path) if settings.sqlite_path is not None else None
        self._stopping = False
        self.dead_loops: dict[str, str] = {}
        """Long-lived tasks that ended while the daemon ran, with why: readiness fails and the process exits."""
        self.faulted = asyncio.Event()

    async def _write_events(self, events: Sequence[NewEvent]) -> list[InsertOutcome]:
        return await self.store.insert_events(events, now=datetime.now(UTC))

    async def start(self) -> None:
        if self._lock is not None:
            self._lock.acquire()
        await self.store.open()
        recovery = await self.store.recover(reason=RESTART_REASON, now=datetime.now(UTC))
        if recovery.requeued_events or recovery.interrupted_runs:
            await log.awarning(
                "recovered after restart",
                requeued_events=recovery.requeued_events,
                interrupted_runs=recovery.interrupted_runs,
            )
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        engine = self.settings.engine
        executor = Executor(
            store=self.store,
            registry=self.registry,
            metrics=self.metrics,
            http=self._http,
            retry_backoff_seconds=engine.retry_backoff.total_seconds(),
        )
        self._worker = Worker(
            store=self.store,
            executor=executor,
            rules=lambda: self.ruleset,
            metrics=self.metrics,
            concurrency=engine.concurrency,
            poll_interval=engine.poll_interval.total_seconds(),
            upkeep=Upkeep(heartbeat_interval=engine.heartbeat_interval, retention=self.settings.store.retention),
        )
        self._outbox = Outbox(
            store=self.store,
            channels=build_channels(self.settings),
            policy=lambda: escalation_policy(self.settings, self.ruleset),
            settings=self.settings.escalation,
            metrics=self.metrics,
            poll_interval=engine.poll_interval.total_seconds(),
        )
        self._decider = decider = self._build_decider()
        worker = self._worker

        def committed(stored: int) -> None:
            self.metrics.backlog.add(stored)
            decider.wake()

        self._committer.on_commit = committed
        if isinstance(self.store, PostgresStore):
            # Another replica (or this one) committed events. Only the decider is woken: it wakes the worker when
            # it has made runs, and a run another replica decided is that replica's worker's, or found by polling.
            self.store.on_notify = decider.wake
        self._worker.on_outcome = self._outbox.wake
        decider.on_planned = worker.wake
        decider.on_outcome = self._outbox.wake
        self._committer.start()
        decider.start()
        self._worker.start()
        self._outbox.start()
        self._supervise()
        services = Services(
            settings=self.settings,
            store=self.store,
            committer=self._committer,
            metrics=self.metrics,
            is_ready=lambda: self.ruleset is not None,
            problems=self.problems,
            rule_names=lambda: {c.rule.name for c in self.ruleset.rules},
            wake=self._worker.wake,
            backlog=lambda: self.metrics.backlog.value,
            instance=self.store.owner,
            control=ControlService(
                store=self.store,
                approvers=self.settings.chatops.approvers,
                rule_names=lambda: {c.rule.name for c in self.ruleset.rules},
                wake=self._worker.wake,
                on_denied=lambda run: self.metrics.runs.labels(run.status.value).inc(),
                instance=self.store.owner,
                config_status=self.reload_status.as_json,
            ),
            match_rules=lambda labels: [c.rule.name for c in matching_rules(self.ruleset, labels, "firing")],
            rules=lambda: {c.rule.name: c.rule for c in self.ruleset.rules},
            verifies=lambda action: (spec := self.registry.get(action)) is not None and spec.verifies,
        )
        # aiohttp's keep-alive timer runs from the connection's start and from each response until the next
        # request's headers are in: the header timeout for idle connections and slow (slowloris) headers alike.
        self._runner = web.AppRunner(
            build_app(services),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.settings.server.header_timeout.total_seconds(),
        )
        await self._runner.setup()
        host, port = self.settings.server.host_port
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()
        for warning in self.ruleset.warnings:
            await log.awarning("playbook warning", warning=warning)
        await self._watch_rules()
        await log.ainfo(
            "serving",
            listen=self.settings.server.listen,
            instance=self.store.owner,
            rules=len(self.ruleset.rules),
            playbooks=len(self.ruleset.playbooks),
            dry_run=self.settings.dry_run,
        )

    def loops(self) -> dict[str, asyncio.Task[None]]:
        tasks = {**(self._worker.tasks if self._worker else {})}
        if self._decider is not None and self._decider.task is not None:
            tasks["decider"] = self._decider.task
        if self._committer.task is not None:
            tasks["group-commit"] = self._committer.task
        if self._outbox is not None and self._outbox.task is not None:
            tasks["outbox"] = self._outbox.task
        return tasks

    def _supervise(self) -> None:
        for name, task in self.loops().items():
            task.add_done_callback(functools.partial(self._loop_ended, name))

    def _loop_ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        if task.cancelled():
            why = "cancelled"
        else:
            error = task.exception()
            why = f"{type(error).__name__}: {error}" if error is not None else "returned"
        self.dead_loops[name] = why
        log.error(
            "a loop ended while the daemon runs; shutting down to be restarted",
            loop=name,
            why=why,
            exc_info=task.exception() if not task.cancelled() else None,
        )
        self.faulted.set()

    def problems(self) -> list[str]:
        """Why the daemon is not ready, beyond the store and the rules: loops that ended."""
        return [f"loop {name} ended ({why})" for name, why in self.dead_loops.items()]

    async def _watch_rules(self) -> None:
        watch = self.settings.rules_watch
        if watch.enabled:
            self._watcher = FolderWatcher(
                [self.settings.rules_dir, self.settings.playbooks_dir],
                poll_interval=watch.poll_interval.total_seconds(),
                settle=watch.settle.total_seconds(),
                on_change=self.reload,
            )
            task = await self._watcher.start()
            task.add_done_callback(functools.partial(self._loop_ended, "rules-watch"))  # supervised as the others

    def _build_decider(self) -> Decider:
        engine, guardrails = self.settings.engine, self.settings.guardrails
        registry = self.registry
        return Decider(
            store=self.store,
            rules=lambda: self.ruleset,
            metrics=self.metrics,
            action_mutates=lambda action: registry[action].mutates if action in registry else True,
            settings=DecideSettings(
                dry_run=self.settings.dry_run,
                guardrails=guardrails,
                windows=[compile_window(window) for window in guardrails.maintenance_windows],
                batch_size=engine.decide_batch,
                max_attempts=engine.max_decision_attempts,
                poll_interval=engine.poll_interval.total_seconds(),
            ),
        )

    async def reload(self) -> bool:
        """Reload rules and playbooks; an invalid set is refused and the old one kept."""
        try:
            ruleset = load_rules(self.settings, self.registry)
        except FileProblems as exc:
            self.metrics.config_reloads.labels("failed").inc()
            self.reload_status.record(ok=False, now=datetime.now(UTC), problems=[str(p) for p in exc.problems])
            await log.aerror("reload refused, keeping the previous rules", problems=[str(p) for p in exc.problems])
            return False
        self.ruleset = ruleset
        self.metrics.config_reloads.labels("succeeded").inc()
        self.reload_status.record(ok=True, now=datetime.now(UTC))
        await log.ainfo("reloaded", rules=len(ruleset.rules), playbooks=len(ruleset.playbooks))
        return True

    async def stop(self) -> None:
        """Stop taking webhooks, let stored work drain within the grace period, then close."""
        self._stopping = True
        if self._watcher is not None:
            await self._watcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._committer.stop()
        if self._decider is not None:
            await self._decider.stop()
        if self._worker is not None:
            await self._worker.stop(grace=self.settings.server.shutdown_grace.total_seconds())
        if self._outbox is not None:  # after the runs: their escalations are in the outbox, sent now or at restart
            await self._outbox.run_once()
            await self._outbox.stop()
        if self._http is not None:
            await self._http.close()
        await self.registry.close()
        await self.store.close()
        if self._lock is not None:
            self._lock.release()
        await log.ainfo("stopped")


async def serve(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT (exit status 0) or until a loop ends unexpectedly (status 1)."""
    daemon = Daemon(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = asyncio.create_task(daemon.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await daemon.start()
    return await run_until_stopped(daemon, stop)


async def run_until_stopped(daemon: Daemon, stop: asyncio.Event) -> int:
    """Wait for a stop request or a loop's death, shut down, and return the process exit status."""
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(daemon.faulted.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    faulted = daemon.faulted.is_set()
    grace = daemon.settings.server.shutdown_grace.total_seconds()
    await log.ainfo("shutting down", grace_seconds=grace, dead_loops=daemon.dead_loops or None)
    await daemon.stop()
    return 1 if faulted else 0
