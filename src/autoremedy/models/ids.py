"""Ids that are all strings (or ints) underneath but must never stand in for each other: a run id passed where
a fingerprint is expected would match nothing and fail silently. `NewType`s cost nothing at run time and let
mypy refuse the mix-up; values read from the store or a request become one by a call (`RunId(row["id"])`)."""

from __future__ import annotations

from typing import NewType

RunId = NewType("RunId", str)
EventId = NewType("EventId", int)
Fingerprint = NewType("Fingerprint", str)
"""Alertmanager's fingerprint of an alert's labels."""
RuleName = NewType("RuleName", str)
