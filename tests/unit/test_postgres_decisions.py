"""Table-driven tests of the pure failover decision: when the replica may be promoted, and lag arithmetic."""

from __future__ import annotations

import pytest

from autoremedy.decide.postgres import PrimaryState, decide_promotion, describe_lag, lsn_to_int

S = PrimaryState

# (replica in recovery, old primary, force, verdict, split brain)
CASES = [
    pytest.param(False, S.ACCEPTS_WRITES, False, "already_primary", False, id="already-primary-whatever-else"),
    pytest.param(True, S.UNREACHABLE, False, "promote", False, id="primary-down"),
    pytest.param(True, S.IN_RECOVERY, False, "promote", False, id="primary-demoted"),
    pytest.param(True, S.READ_ONLY, False, "promote", False, id="primary-fenced-read-only"),
    pytest.param(True, S.ACCEPTS_WRITES, False, "refuse", False, id="split-brain-refused"),
    pytest.param(True, S.ACCEPTS_WRITES, True, "promote", True, id="split-brain-forced"),
    pytest.param(True, S.UNKNOWN, False, "refuse", False, id="unknown-refused"),
    pytest.param(True, S.UNKNOWN, True, "promote", True, id="unknown-forced"),
    pytest.param(True, S.NOT_READY, False, "wait", False, id="starting-up-waits"),
    pytest.param(True, S.NOT_READY, True, "promote", True, id="starting-up-forced"),
    pytest.param(True, S.UNREACHABLE, True, "promote", False, id="force-without-risk-is-not-split-brain"),
]


@pytest.mark.parametrize(("in_recovery", "primary", "force", "verdict", "split_brain"), CASES)
def test_decide_promotion(
    in_recovery: bool, primary: PrimaryState, force: bool, verdict: str, split_brain: bool
) -> None:
    decision = decide_promotion(replica_in_recovery=in_recovery, primary=primary, force=force)
    assert (decision.verdict, decision.split_brain) == (verdict, split_brain)
    assert decision.reason


def test_the_refusal_says_what_to_do() -> None:
    decision = decide_promotion(replica_in_recovery=True, primary=S.ACCEPTS_WRITES, force=False)
    assert decision.reason == (
        "refused: the old primary still accepts writes; promoting the replica would make two primaries (split "
        "brain). Stop or fence the old primary, or set force: true"
    )


@pytest.mark.parametrize(
    ("lsn", "position"),
    [("0/0", 0), ("0/301CC50", 0x301CC50), ("1/0", 1 << 32), ("A/FF", (10 << 32) + 255)],
)
def test_lsn_to_int(lsn: str, position: int) -> None:
    assert lsn_to_int(lsn) == position


def test_lsn_to_int_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not an LSN"):
        lsn_to_int("12345")


def test_describe_lag() -> None:
    assert describe_lag(replay_lag_bytes=0, replay_age_seconds=1.25, behind_bytes=42) == (
        "42 bytes behind the old primary, 0 bytes received but not yet replayed, last replayed transaction 1.2s ago"
    )
    assert describe_lag(replay_lag_bytes=None, replay_age_seconds=None, behind_bytes=None) == (
        "lag unknown (nothing streamed yet)"
    )
