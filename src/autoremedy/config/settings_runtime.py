"""Settings of what steps and the daemon reach at run time: Prometheus, HTTP, secrets, rule files, logs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from autoremedy.config.settings_base import _Section
from autoremedy.models.durations import Duration


class PrometheusSettings(_Section):
    url: str = Field(default="http://127.0.0.1:9090", description="Prometheus base URL for verify and query steps")
    timeout: Duration = Field(default=timedelta(seconds=10), description="per query")


class HttpSettings(_Section):
    """`http.request` steps: where a URL built from an alert may point."""

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="glob patterns (e.g. `*.hooks.example.com`) a host built by a URL template may match; a host "
        "written literally in the template needs no entry",
    )
    allow_link_local: bool = Field(
        default=False,
        description="let http.request reach link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, "
        "fd00:ec2::254, metadata.google.internal)",
    )


class SecretSource(_Section):
    """Where a `{{ secret("NAME") }}` reads its value: an environment variable or a file, exactly one."""

    env: str | None = Field(default=None, description="environment variable holding the secret")
    file: Path | None = Field(default=None, description="file holding the secret (relative to the config file)")

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reads from exactly one of env or file")
        return self


class RulesWatchSettings(_Section):
    enabled: bool = Field(default=True, description="reload rules and playbooks when their files change")
    poll_interval: Duration = Field(
        default=timedelta(seconds=5), description="how often the folders are looked at (polling works on any volume)"
    )
    settle: Duration = Field(
        default=timedelta(seconds=1), description="a change is loaded once the files were unchanged this long"
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
