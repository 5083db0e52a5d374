"""The Alertmanager webhook payload (version 4), as Alertmanager 0.25+ sends it.

Only the fields we use are declared; unknown fields (e.g. `notification_reason` from 0.32+) are ignored so a newer
Alertmanager never gets a 400 from us.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AlertStatus = Literal["firing", "resolved"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Lenient):
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1)


class WebhookPayload(_Lenient):
    version: Literal["4"]
    receiver: str = ""
    status: AlertStatus
    alerts: list[Alert]
    group_key: str = Field(default="", alias="groupKey")
    external_url: str = Field(default="", alias="externalURL")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")
