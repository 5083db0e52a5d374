"""Settings of the CrowdSec and PostgreSQL integrations (`crowdsec:` and `databases:` in the config file).

Secrets (the watcher password, the bouncer key, DSNs) are secret strings: validation messages never repeat them.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from autoremedy.models.durations import Duration


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrowdSecSettings(_Section):
    url: str = Field(description="CrowdSec Local API base URL, e.g. http://crowdsec:8080")
    machine_id: str = Field(min_length=1, description="the watcher machine autoremedy logs in as")
    password: SecretStr = Field(description="the watcher's password (or env AUTOREMEDY_CROWDSEC__PASSWORD)")
    bouncer_key: SecretStr | None = Field(default=None, description="lets a ban be read back to confirm it")
    allowlist: list[str] = Field(default_factory=list, description="CIDRs never banned, besides the built-in ones")
    max_prefix: int = Field(default=24, ge=0, le=32, description="refuse IPv4 ranges wider than this prefix")
    max_prefix_v6: int = Field(default=48, ge=0, le=128, description="refuse IPv6 ranges wider than this prefix")
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="per LAPI request")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url {url!r} must be an http:// or https:// URL, e.g. http://crowdsec:8080")
        return url.rstrip("/")

    @field_validator("allowlist")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)  # host bits allowed: a wider allowlist is safe
            except ValueError:
                raise ValueError(f"allowlist entry {cidr!r} is not an IP address or CIDR") from None
        return [cidr.strip() for cidr in cidrs]


class DatabaseSettings(_Section):
    primary: SecretStr = Field(description="DSN of the primary (postgresql://user@host:port/db)")
    replica: SecretStr = Field(description="DSN of the replica to promote")
    password: SecretStr | None = Field(
        default=None, description="used where a DSN has none (or env AUTOREMEDY_DATABASES__NAME__PASSWORD)"
    )
    connect_timeout: Duration = Field(
        default=timedelta(seconds=3), description="per connection attempt; never beyond the step's timeout"
    )

    @field_validator("primary", "replica")
    @classmethod
    def _postgres_url(cls, dsn: SecretStr) -> SecretStr:
        # The DSN may hold a password: the message must not quote it.
        if not dsn.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL, e.g. postgresql://autoremedy@db-0.db:5432/postgres")
        return dsn
