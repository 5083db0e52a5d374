"""Settings of the store, the engine that runs playbooks, and the Kubernetes it acts on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from autoremedy.config.settings_base import _Section
from autoremedy.models.durations import Duration


class StoreSettings(_Section):
    url: str = Field(default="sqlite:///var/autoremedy.db", description="sqlite:///path (relative to the config)")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", description="SQLite: NORMAL survives a process crash, FULL also a power loss"
    )
    busy_timeout: Duration = Field(
        default=timedelta(seconds=5), description="SQLite: how long a write waits for a lock before it fails (503)"
    )
    retention: Duration | None = Field(
        default=timedelta(days=30), description="finished runs, events and audit older than this are pruned"
    )
    pool_size: int = Field(default=10, ge=1, le=100, description="PostgreSQL: connections per instance")


class EngineSettings(_Section):
    concurrency: int = Field(default=4, ge=1, le=256, description="runs executed at once")
    max_queue_depth: int = Field(
        default=1_000_000,
        ge=1,
        description="stored alerts waiting to be decided above which webhooks get 503 (the queue is on disk)",
    )
    decide_batch: int = Field(
        default=500, ge=1, le=10_000, description="alert events claimed, decided and recorded per transaction"
    )
    max_decision_attempts: int = Field(
        default=3, ge=1, description="an event whose decision failed this many times is dead-lettered"
    )
    heartbeat_interval: Duration = Field(default=timedelta(seconds=5), description="how often runs are heartbeaten")
    takeover_after: Duration = Field(
        default=timedelta(seconds=30), description="a run without heartbeat this long is taken over by a replica"
    )
    poll_interval: Duration = Field(default=timedelta(seconds=2), description="fallback when no wake-up arrives")
    retry_backoff: Duration = Field(
        default=timedelta(seconds=1), description="first wait between a step's attempts; doubles up to 60s"
    )

    @model_validator(mode="after")
    def _takeover_outlasts_heartbeats(self) -> EngineSettings:
        # A run is taken over when its heartbeat is this old: under three intervals, one slow heartbeat (a busy
        # store, a GC pause) hands a live run to another instance.
        if self.takeover_after < 3 * self.heartbeat_interval:
            raise ValueError(
                f"takeover_after ({self.takeover_after.total_seconds():g}s) must be at least 3 x heartbeat_interval "
                f"({3 * self.heartbeat_interval.total_seconds():g}s)"
            )
        return self


class NamespacePolicy(_Section):
    allow: list[str] = Field(default_factory=list, description="namespaces actions may touch; empty: all not denied")
    deny: list[str] = Field(
        default_factory=lambda: ["kube-*"], description="never touched, glob patterns; wins over allow"
    )
    own_namespace: str | None = Field(
        default=None,
        description="the daemon's own namespace, never touched; absent: read from the service account's namespace "
        'file when running in a cluster; "" protects none',
    )


class KubernetesSettings(_Section):
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file; absent: in-cluster service account, then $KUBECONFIG, ~/.kube/config",
    )
    context: str | None = Field(default=None, description="kubeconfig context; absent: the current context")
    namespaces: NamespacePolicy = Field(default_factory=NamespacePolicy)
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="per API request")
