"""Pure decisions behind `postgres.promote`: may the replica be promoted, given what was seen of it and of the old
primary? And how far behind is it? Nothing here talks to a database."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class PrimaryState(StrEnum):
    """What the old primary looked like from autoremedy, just before a promotion."""

    UNREACHABLE = "unreachable"
    """No connection (refused, timed out, reset): it is down, or cut off from autoremedy."""
    NOT_READY = "not_ready"
    """It answered `the database system is starting up` (or shutting down): it may be back as a primary soon."""
    IN_RECOVERY = "in_recovery"
    """Up, but a standby itself: it takes no writes."""
    READ_ONLY = "read_only"
    """Up as a primary, but a write in a (rolled back) transaction was refused."""
    ACCEPTS_WRITES = "accepts_writes"
    """Up as a primary, and a write in a (rolled back) transaction went through."""
    UNKNOWN = "unknown"
    """It answered, but its state could not be read (authentication failed, an error): assume it takes writes."""


Verdict = Literal["already_primary", "promote", "refuse", "wait"]


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    verdict: Verdict
    reason: str
    split_brain: bool = False
    """True when promoting (forced) while the old primary may still take writes."""


_SAFE = {
    PrimaryState.UNREACHABLE: "the old primary is unreachable",
    PrimaryState.IN_RECOVERY: "the old primary is in recovery (a standby)",
    PrimaryState.READ_ONLY: "the old primary refuses writes",
}


def decide_promotion(*, replica_in_recovery: bool, primary: PrimaryState, force: bool) -> PromotionDecision:
    """The replica is promoted only when the old primary cannot take writes, or when forced."""
    if not replica_in_recovery:
        return PromotionDecision("already_primary", "the replica is not in recovery: already primary")
    if primary in _SAFE:
        return PromotionDecision("promote", _SAFE[primary])
    risk = {
        PrimaryState.ACCEPTS_WRITES: "the old primary still accepts writes",
        PrimaryState.NOT_READY: "the old primary is starting up or shutting down",
        PrimaryState.UNKNOWN: "the old primary answered but its state could not be read",
    }[primary]
    if force:
        return PromotionDecision("promote", f"forced although {risk}: fence it now", split_brain=True)
    if primary is PrimaryState.NOT_READY:
        return PromotionDecision("wait", f"{risk}: checking again before promoting")
    return PromotionDecision(
        "refuse",
        f"refused: {risk}; promoting the replica would make two primaries (split brain). "
        "Stop or fence the old primary, or set force: true",
    )


def lsn_to_int(lsn: str) -> int:
    """A pg_lsn as text (`0/301CC50`) -> a byte position."""
    high, _, low = lsn.partition("/")
    if not low:
        raise ValueError(f"not an LSN: {lsn!r}")
    return (int(high, 16) << 32) + int(low, 16)


def describe_lag(*, replay_lag_bytes: int | None, replay_age_seconds: float | None, behind_bytes: int | None) -> str:
    """One phrase for people: bytes received but not yet replayed, time since the last replayed transaction, and
    (when the old primary could be asked) how far the replica is behind it."""
    parts = []
    if behind_bytes is not None:
        parts.append(f"{behind_bytes} bytes behind the old primary")
    if replay_lag_bytes is not None:
        parts.append(f"{replay_lag_bytes} bytes received but not yet replayed")
    if replay_age_seconds is not None:
        parts.append(f"last replayed transaction {replay_age_seconds:.1f}s ago")
    return ", ".join(parts) if parts else "lag unknown (nothing streamed yet)"
