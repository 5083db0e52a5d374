"""Failed sign-ins per client address (control/limiter.py), on explicit instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autoremedy.control.limiter import FailedSignIns

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_an_address_waits_after_its_failures_until_the_oldest_leaves_the_window() -> None:
    limits = FailedSignIns(max_failures=3, window=timedelta(minutes=10))
    for minute in range(3):
        assert limits.retry_after("10.0.0.1", T0 + timedelta(minutes=minute)) is None
        limits.failed("10.0.0.1", T0 + timedelta(minutes=minute))
    assert limits.retry_after("10.0.0.1", T0 + timedelta(minutes=3)) == 7 * 60  # the first failure leaves at 10:00
    assert limits.retry_after("10.0.0.2", T0 + timedelta(minutes=3)) is None  # another address is not held back
    assert limits.retry_after("10.0.0.1", T0 + timedelta(minutes=10)) is None
    limits.failed("10.0.0.1", T0 + timedelta(minutes=10))  # two still count, and this one
    assert limits.retry_after("10.0.0.1", T0 + timedelta(minutes=10, seconds=1)) == 60 - 1


def test_the_addresses_remembered_are_bounded_oldest_forgotten_first() -> None:
    limits = FailedSignIns(max_failures=1, window=timedelta(hours=1), max_clients=100)
    for n in range(1000):
        limits.failed(f"10.0.{n // 256}.{n % 256}", T0)
    assert limits.retry_after("10.0.0.0", T0) is None  # forgotten
    assert limits.retry_after("10.0.3.231", T0) is not None  # the 1,000th: remembered
