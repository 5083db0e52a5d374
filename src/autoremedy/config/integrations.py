"""Settings of the CrowdSec and PostgreSQL integrations (`crowdsec:` and `databases:` in the config file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrowdSecSettings(_Section):
    url: str = Field(description="CrowdSec Local API base URL, e.g. http://crowdsec:8080")
    machine_id: str = Field(description="the watcher machine autoremedy logs in as")
    password: SecretStr = Field(description="the watcher's password (or env AUTOREMEDY_CROWDSEC__PASSWORD)")
    bouncer_key: SecretStr | None = Field(default=None, description="lets a ban be read back to confirm it")
    allowlist: list[str] = Field(default_factory=list, description="CIDRs never banned, besides the built-in ones")
    max_prefix: int = Field(default=24, description="refuse IPv4 ranges wider than this prefix")


class DatabaseSettings(_Section):
    primary: SecretStr = Field(description="DSN of the primary")
    replica: SecretStr = Field(description="DSN of the replica to promote")
