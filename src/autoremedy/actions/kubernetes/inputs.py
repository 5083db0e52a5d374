"""Inputs of the Kubernetes actions: the names users write in `with:`."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from autoremedy.actions.base import ActionInputs
from autoremedy.models.durations import Duration
from autoremedy.models.flags import StrictFlag

ScalableKind = Literal["Deployment", "StatefulSet"]
WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]


class ObjectRef(ActionInputs):
    namespace: str
    name: str


class ScaleInputs(ObjectRef):
    kind: ScalableKind = "Deployment"
    replicas: int | str = Field(description="a count (5) or a change (+2, -1)")
    min: int = Field(default=1, ge=0, description="never fewer replicas than this")
    max: int = Field(default=10, ge=1, description="never more replicas than this")


class RestartInputs(ObjectRef):
    kind: WorkloadKind = "Deployment"


class DeletePodInputs(ObjectRef):
    grace_period_seconds: int | None = Field(default=None, ge=0, description="absent: the pod's own setting")
    allow_orphan: StrictFlag = Field(default=False, description="also delete a pod that no controller will replace")


class RollbackInputs(ObjectRef):
    to_revision: int | None = Field(default=None, ge=1, description="absent: the revision before the current one")


class PatchServiceSelectorInputs(ObjectRef):
    selector: dict[str, str] = Field(min_length=1, description="the Service's new selector, replacing the old one")


class WaitRolloutInputs(ObjectRef):
    kind: WorkloadKind = "Deployment"
    interval: Duration = Field(default=timedelta(seconds=1), description="how often to look")
