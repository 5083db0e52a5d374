"""The daemon's own logs (structlog, JSON) and metrics (prometheus-client)."""

from __future__ import annotations

import logging
import sys
from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.decide.redact import redact
from autoremedy.models.clock import Clock

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(*, level: str = "info", fmt: str = "json") -> None:
    """JSON lines on stderr; run_id and fingerprint come from contextvars bound by the engine."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,  # after the traceback is text: an exception message can quote a URL with a token
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def redact_event(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Every log line through the one redaction (decide/redact.py): secret keys, URLs, configured secrets."""
    redacted: structlog.typing.EventDict = redact(dict(event_dict))
    return redacted


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(logger_name=name)
    return logger


class LoopErrors:
    """An unexpected error in one turn of a long-lived loop: counted, logged with its traceback, and followed by a
    pause that doubles while errors repeat (so a persistent bug does not spin), reset by a clean turn."""

    def __init__(
        self, counter: Counter, loop: str, *, first: float = 0.5, ceiling: float = 30.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._counter = counter.labels(loop)
        self._clock = clock
        self._loop = loop
        self._first, self._ceiling = first, ceiling
        self._pause = first

    def ok(self) -> None:
        self._pause = self._first

    async def failed(self, log: structlog.typing.FilteringBoundLogger) -> None:
        """Call from an `except` block."""
        self._counter.inc()
        await log.aexception("unexpected error in a loop; it goes on", loop=self._loop, retry_in=self._pause)
        await self._clock.sleep(self._pause)
        self._pause = min(self._pause * 2, self._ceiling)


class Backlog:
    """How many stored alert events wait to be decided, as this daemon knows it: raised by every commit of new
    events, set to the store's count by the decider. The webhook refuses new work (503) above a limit."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self.value = 0

    def add(self, count: int) -> None:
        self.set(self.value + count)

    def set(self, count: int) -> None:
        self.value = count
        self._gauge.set(count)


DECISION_OUTCOMES: Final = ("runs", "no_rule_matched", "dead_lettered")


class Metrics:
    """One registry per daemon, so several can live in one test process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._declare_ingest(self.registry)
        self._declare_decisions(self.registry)
        self._declare_runs(self.registry)
        self._declare_escalation(self.registry)
        self._declare_config(self.registry)
        self._declare_loops(self.registry)

    def _declare_ingest(self, r: CollectorRegistry) -> None:
        self.alerts_received = Counter(
            "autoremedy_alerts_received_total",
            "Alerts received in webhooks, by alert status",
            ["status"],
            registry=r,
        )
        self.alert_duplicates = Counter(
            "autoremedy_alert_duplicates_total",
            "Alert deliveries already stored (HA peers, retries)",
            registry=r,
        )
        self.webhook_responses = Counter(
            "autoremedy_webhook_responses_total", "Webhook answers by HTTP status code", ["code"], registry=r
        )
        self.webhook_duration = Histogram(
            "autoremedy_webhook_duration_seconds",
            "Alertmanager webhook requests, from the handler's start to its answer (the commit included)",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.queue_depth = Gauge("autoremedy_queue_depth", "Stored alert events not yet processed", registry=r)
        self.backlog = Backlog(self.queue_depth)
        self.queue_oldest_age = Gauge(
            "autoremedy_queue_oldest_age_seconds",
            "Age of the oldest stored alert event still waiting to be decided; 0 when none waits",
            registry=r,
        )

    def _declare_decisions(self, r: CollectorRegistry) -> None:
        self.events_decided = Counter(
            "autoremedy_events_decided_total",
            "Alert events decided, by outcome: runs (a rule matched), no_rule_matched, dead_lettered",
            ["outcome"],
            registry=r,
        )
        for outcome in DECISION_OUTCOMES:  # from zero, so that increase() sees the first dead letter
            self.events_decided.labels(outcome)
        self.decision_failures = Counter(
            "autoremedy_decision_failures_total",
            "Failed attempts to decide an event (each is requeued, or dead-lettered when permanent or too many)",
            registry=r,
        )
        self.decide_batch_size = Histogram(
            "autoremedy_decide_batch_size",
            "Events claimed and decided together in one batch",
            registry=r,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
        )
        self.decide_batch_duration = Histogram(
            "autoremedy_decide_batch_duration_seconds",
            "One decision batch: claim, decide, record",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def _declare_runs(self, r: CollectorRegistry) -> None:
        self.runs = Counter("autoremedy_runs_total", "Runs that reached a final status", ["status"], registry=r)
        self.runs_active = Gauge("autoremedy_runs_active", "Runs executing now", registry=r)
        self.runs_lost = Counter(
            "autoremedy_runs_lost_total",
            "Runs this instance stopped executing because another instance took them over (a heartbeat gap)",
            registry=r,
        )
        self.step_duration = Histogram(
            "autoremedy_step_duration_seconds",
            "Step durations, all attempts",
            ["action", "outcome"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
        )
        self.guardrail_blocks = Counter(
            "autoremedy_guardrail_blocks_total",
            "Runs a guardrail skipped, deferred, delayed or held",
            ["reason"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "autoremedy_breaker_open", "1 while the global circuit breaker is open, else 0", registry=r
        )

    def _declare_escalation(self, r: CollectorRegistry) -> None:
        self.escalations_sent = Counter(
            "autoremedy_escalations_sent_total",
            "Escalations delivered, by channel and kind",
            ["channel", "kind"],
            registry=r,
        )
        self.escalation_failures = Counter(
            "autoremedy_escalation_failures_total",
            "Failed escalation sends by channel and outcome (retry, give_up)",
            ["channel", "outcome"],
            registry=r,
        )
        self.chatops_failures = Counter(
            "autoremedy_chatops_failures_total",
            "Chat requests that failed with an unexpected error (logged with its traceback), by transport",
            ["transport"],
            registry=r,
        )

    def _declare_config(self, r: CollectorRegistry) -> None:
        self.config_reloads = Counter(
            "autoremedy_config_reloads_total", "Rule and playbook reloads by result", ["result"], registry=r
        )
        self.config_last_reload_success = Gauge(
            "autoremedy_config_last_reload_success",
            "Whether the last load of rules and playbooks succeeded (1) or was refused (0)",
            registry=r,
        )
        self.config_last_reload_success_time = Gauge(
            "autoremedy_config_last_reload_success_timestamp_seconds",
            "When rules and playbooks were last loaded successfully",
            registry=r,
        )

    def _declare_loops(self, r: CollectorRegistry) -> None:
        self.loop_errors = Counter(
            "autoremedy_loop_errors_total",
            "Unexpected errors caught in a long-lived loop (worker, heartbeat, outbox, group-commit), by loop",
            ["loop"],
            registry=r,
        )
