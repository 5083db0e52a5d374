"""`postgres.promote` and `postgres.check_writable`: fail a PostgreSQL primary over to its streaming replica.

DSNs and passwords come only from `databases.NAME` in the config (or its environment overrides); inputs name a
database, never an address. Every connection and query is bounded by the step's deadline.

Promotion refuses while the old primary still takes writes (two primaries: split brain) unless forced. The old
primary is probed with a write that is rolled back: a temporary table, which a standby and a read-only primary
both refuse, and which leaves nothing behind. `check_writable` commits such a write on the new primary, so a
commit that would hang (a `synchronous_standby_names` still waiting for the old replica) is found too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import asyncpg
from pydantic import Field

from autoremedy.actions.base import ActionContext, ActionInputs, ActionResult, ActionSpec
from autoremedy.config.integrations import DatabaseSettings
from autoremedy.decide.postgres import PrimaryState, decide_promotion, describe_lag, lsn_to_int
from autoremedy.models.flags import StrictFlag

Server = Literal["primary", "replica"]
_MARGIN_S = 0.1  # leave this much of the step for closing connections and reporting
_CLOSE_TIMEOUT_S = 1.0
# One simple query each, so a single timeout bounds the whole transaction, COMMIT included. The temporary table's
# catalog rows are WAL-logged, so the commit is a real one (it waits for synchronous standbys), yet nothing stays.
_WRITE = (
    "BEGIN; CREATE TEMPORARY TABLE autoremedy_write_probe (checked_at timestamptz) ON COMMIT DROP; "
    "INSERT INTO autoremedy_write_probe VALUES (now()); {end}"
)
_PROBE_COMMITTED = _WRITE.format(end="COMMIT")
_PROBE_ROLLED_BACK = _WRITE.format(end="ROLLBACK")

_REPLICA_STATE = """
SELECT pg_is_in_recovery() AS in_recovery,
       pg_last_wal_receive_lsn()::text AS received,
       pg_last_wal_replay_lsn()::text AS replayed,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS replay_lag_bytes,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age_seconds
"""
_PRIMARY_STATE = """
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('transaction_read_only') AS read_only,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current
"""

# Errors that mean "no connection", as opposed to "the server answered no".
_UNREACHABLE = (OSError, TimeoutError, asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)


class PromoteInputs(ActionInputs):
    database: str = Field(min_length=1, description="a NAME under `databases:` in the config")
    force: StrictFlag = Field(default=False, description="promote even if the old primary still accepts writes")


class CheckWritableInputs(ActionInputs):
    database: str = Field(min_length=1, description="a NAME under `databases:` in the config")
    server: Server = Field(default="replica", description="which of the database's servers (after a failover, replica)")


class Refused(Exception):
    """A check failed; `verdict` says whether to retry."""

    def __init__(self, verdict: ActionResult) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


class PostgresActions:
    def __init__(self, databases: Mapping[str, DatabaseSettings]) -> None:
        self._databases = dict(databases)

    def specs(self) -> list[ActionSpec]:
        return [
            ActionSpec(
                "postgres.promote",
                PromoteInputs,
                self.promote,
                "Promote a database's streaming replica to primary, refusing while the old primary takes writes.",
                dry_run=True,
            ),
            ActionSpec(
                "postgres.check_writable",
                CheckWritableInputs,
                self.check_writable,
                "Check that a database server commits writes (a temporary table, dropped at commit).",
                dry_run=True,
            ),
        ]

    # -- promote ------------------------------------------------------------------------------------------

    async def promote(self, inputs: PromoteInputs, ctx: ActionContext) -> ActionResult:
        settings = self._databases.get(inputs.database)
        if settings is None:
            return self._unknown(inputs.database)
        try:
            return await self._promote(inputs, settings, ctx)
        except Refused as refused:
            return refused.verdict

    async def _promote(self, inputs: PromoteInputs, settings: DatabaseSettings, ctx: ActionContext) -> ActionResult:
        name = inputs.database
        replica = await _connect(settings, "replica", name, ctx)
        try:
            state = await _fetchrow(replica, _REPLICA_STATE, ctx, f"replica of {name!r}")
            if not state["in_recovery"]:
                return ActionResult.done(f"the replica of {name!r} is already primary (not in recovery)", database=name)
            old = await _probe_primary(settings, name, ctx)
            decision = decide_promotion(replica_in_recovery=True, primary=old.state, force=inputs.force)
            lag = _lag(state, old.lsn)
            data: dict[str, Any] = {
                "database": name,
                "old_primary": old.state.value,
                "old_primary_detail": old.detail,
                "forced": decision.split_brain,
                **lag,
            }
            if decision.verdict != "promote":
                verdict = ActionResult.give_up if decision.verdict == "refuse" else ActionResult.retry
                return verdict(f"{decision.reason} [{old.detail}]", **data)
            where = f"replica of {name!r} ({describe_lag(**lag)})"
            if ctx.dry_run:
                return ActionResult.done(f"dry run: would promote the {where}: {decision.reason}", **data)
            await ctx.log.awarning("promoting postgres replica", database=name, reason=decision.reason, **lag)
            problem = await _pg_promote(replica, ctx, name)
            if problem is not None:
                return ActionResult.retry(f"the {where} {problem}", **data)
            return ActionResult.done(f"promoted the {where}: {decision.reason}", **data)
        finally:
            await _close(replica)

    # -- check writable -----------------------------------------------------------------------------------

    async def check_writable(self, inputs: CheckWritableInputs, ctx: ActionContext) -> ActionResult:
        settings = self._databases.get(inputs.database)
        if settings is None:
            return self._unknown(inputs.database)
        try:
            return await self._check_writable(inputs, settings, ctx)
        except Refused as refused:
            return refused.verdict

    async def _check_writable(
        self, inputs: CheckWritableInputs, settings: DatabaseSettings, ctx: ActionContext
    ) -> ActionResult:
        where = f"{inputs.server} of {inputs.database!r}"
        data = {"database": inputs.database, "server": inputs.server}
        conn = await _connect(settings, inputs.server, inputs.database, ctx)
        try:
            state = await _fetchrow(conn, _PRIMARY_STATE, ctx, where)
            now = "in recovery (a standby)" if state["in_recovery"] else f"read_only={state['read_only']}"
            if ctx.dry_run:
                return ActionResult.done(f"dry run: would commit a probe write on the {where}; now {now}", **data)
            if state["in_recovery"]:
                return ActionResult.retry(f"the {where} is in recovery (a standby): it takes no writes", **data)
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await conn.execute(_PROBE_COMMITTED, timeout=_remaining(ctx, where))
            except asyncpg.ReadOnlySQLTransactionError as exc:
                return ActionResult.give_up(f"the {where} refuses writes: {exc}", **data)
            except asyncpg.PostgresError as exc:
                return ActionResult.give_up(f"a probe write on the {where} failed: {type(exc).__name__}: {exc}", **data)
            except _UNREACHABLE as exc:
                return ActionResult.retry(
                    f"a probe write on the {where} did not commit: {_brief(exc)} (a synchronous standby that is "
                    "gone makes commits wait: check synchronous_standby_names)",
                    **data,
                )
            millis = round((loop.time() - started) * 1000, 1)
            return ActionResult.done(f"the {where} commits writes ({millis} ms)", **data, commit_ms=millis)
        finally:
            await _close(conn)

    def _unknown(self, name: str) -> ActionResult:
        known = ", ".join(sorted(self._databases)) or "none: add a `databases:` section to the config"
        return ActionResult.give_up(f"unknown database {name!r} (configured: {known})")


# -- connections ----------------------------------------------------------------------------------------------


def _remaining(ctx: ActionContext, what: str, cap: float | None = None) -> float:
    """Seconds left for one call, within the step's deadline (and `cap`); Refused(retry) when none are."""
    left = ctx.deadline - ctx.clock.monotonic() - _MARGIN_S
    if left <= 0:
        raise Refused(ActionResult.retry(f"no time left in the step to reach the {what}"))
    return min(left, cap) if cap is not None else left


async def _open(settings: DatabaseSettings, server: Server, ctx: ActionContext, what: str) -> asyncpg.Connection:
    dsn = getattr(settings, server).get_secret_value()
    password = settings.password.get_secret_value() if settings.password is not None else None
    timeout = _remaining(ctx, what, settings.connect_timeout.total_seconds())
    connection: asyncpg.Connection = await asyncpg.connect(
        dsn, password=password, timeout=timeout, server_settings={"application_name": "autoremedy"}
    )
    return connection


async def _connect(settings: DatabaseSettings, server: Server, name: str, ctx: ActionContext) -> asyncpg.Connection:
    """A connection to the database's primary or replica; Refused with retry (unreachable) or give_up (refused)."""
    what = f"{server} of {name!r}"
    try:
        return await _open(settings, server, ctx, what)
    except ValueError as exc:  # a DSN asyncpg cannot use; its text may quote the DSN, so it is not repeated
        raise Refused(ActionResult.give_up(f"databases.{name}.{server} is not a usable DSN")) from exc
    except asyncpg.CannotConnectNowError as exc:
        raise Refused(ActionResult.retry(f"the {what} is not ready: {exc}")) from exc
    except _UNREACHABLE as exc:
        raise Refused(ActionResult.retry(f"the {what} is unreachable: {_brief(exc)}")) from exc
    except asyncpg.PostgresError as exc:
        raise Refused(ActionResult.give_up(f"the {what} refused the connection: {_brief(exc)}")) from exc


async def _fetchrow(conn: asyncpg.Connection, sql: str, ctx: ActionContext, what: str) -> Mapping[str, Any]:
    try:
        row = await conn.fetchrow(sql, timeout=_remaining(ctx, what))
    except _UNREACHABLE as exc:
        raise Refused(ActionResult.retry(f"lost the {what}: {_brief(exc)}")) from exc
    except asyncpg.PostgresError as exc:
        raise Refused(ActionResult.give_up(f"the {what} answered an error: {_brief(exc)}")) from exc
    assert row is not None
    result: Mapping[str, Any] = row
    return result


@dataclass(frozen=True, slots=True)
class OldPrimary:
    state: PrimaryState
    lsn: str | None
    """Its current WAL position, when it is up as a primary."""
    detail: str
    """What was seen, for people."""


async def _probe_primary(settings: DatabaseSettings, name: str, ctx: ActionContext) -> OldPrimary:
    """What the old primary is now. It gets at most half of what is left of the step, so that a primary that
    accepts connections and never answers (hung, or half cut off) still leaves time to promote."""
    what = f"primary of {name!r}"
    now = ctx.clock.monotonic()
    ctx = replace(ctx, deadline=now + (ctx.deadline - now) / 2)
    try:
        conn = await _open(settings, "primary", ctx, what)
    except (ValueError, asyncpg.PostgresError, *_UNREACHABLE) as exc:
        return _unseen(exc, name, "old primary")
    try:
        return await _inspect_primary(conn, ctx, what)
    except (asyncpg.PostgresError, *_UNREACHABLE) as exc:
        return _unseen(exc, name, "old primary, during the check")
    finally:
        await _close(conn)


def _unseen(exc: BaseException, name: str, what: str) -> OldPrimary:
    """The old primary's state when asking it failed. A server that answers, but not with its state, is assumed
    to take writes (UNKNOWN); only a missing connection counts as down."""
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return OldPrimary(PrimaryState.NOT_READY, None, f"{what}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return OldPrimary(PrimaryState.UNKNOWN, None, f"{what}: {_brief(exc)}")
    if isinstance(exc, ValueError):  # asyncpg's DSN parser; its text may quote the DSN
        return OldPrimary(PrimaryState.UNKNOWN, None, f"{what}: databases.{name}.primary is not a usable DSN")
    return OldPrimary(PrimaryState.UNREACHABLE, None, f"{what} unreachable: {_brief(exc)}")


async def _inspect_primary(conn: asyncpg.Connection, ctx: ActionContext, what: str) -> OldPrimary:
    """In recovery, or a primary: then does it take a write (in a transaction that is rolled back)?"""
    row = await conn.fetchrow(_PRIMARY_STATE, timeout=_remaining(ctx, what))
    assert row is not None
    if row["in_recovery"]:
        return OldPrimary(PrimaryState.IN_RECOVERY, None, "old primary is in recovery")
    try:
        await conn.execute(_PROBE_ROLLED_BACK, timeout=_remaining(ctx, what))
    except asyncpg.ReadOnlySQLTransactionError as exc:  # the connection is closed next, ending the transaction
        return OldPrimary(PrimaryState.READ_ONLY, row["current"], f"old primary refused a write: {exc}")
    return OldPrimary(PrimaryState.ACCEPTS_WRITES, row["current"], "old primary accepted a write (rolled back)")


async def _pg_promote(conn: asyncpg.Connection, ctx: ActionContext, name: str) -> str | None:
    """`pg_promote(wait => true)`, waiting at most what is left of the step, then confirm it left recovery; None
    when it did, else what went wrong. A replica promoted meanwhile (by an earlier attempt whose answer was lost)
    says recovery is not in progress: the end state wanted."""
    what = f"replica of {name!r}"
    left = _remaining(ctx, what)
    try:
        promoted = await conn.fetchval(
            "SELECT pg_promote(wait => true, wait_seconds => $1)", max(1, int(left - 1)), timeout=left
        )
    except asyncpg.ObjectNotInPrerequisiteStateError:
        promoted = True
    except asyncpg.InsufficientPrivilegeError as exc:
        raise Refused(
            ActionResult.give_up(
                f"not allowed to promote the {what}: {exc} (use a superuser, or GRANT EXECUTE ON FUNCTION "
                f"pg_promote TO the role in databases.{name}.replica)"
            )
        ) from exc
    except _UNREACHABLE as exc:
        raise Refused(ActionResult.retry(f"lost the {what} during pg_promote: {_brief(exc)}")) from exc
    if not promoted:
        return "did not leave recovery within the step timeout"
    still = await _fetchrow(conn, "SELECT pg_is_in_recovery() AS in_recovery", ctx, what)
    return "is still in recovery after pg_promote" if still["in_recovery"] else None


def _lag(state: Mapping[str, Any], primary_lsn: str | None) -> dict[str, Any]:
    behind = None
    if primary_lsn is not None and state["replayed"] is not None:
        behind = max(0, lsn_to_int(primary_lsn) - lsn_to_int(state["replayed"]))
    age = state["replay_age_seconds"]
    return {
        "replay_lag_bytes": state["replay_lag_bytes"],
        "replay_age_seconds": round(age, 3) if age is not None else None,
        "behind_bytes": behind,
    }


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=_CLOSE_TIMEOUT_S)
    except Exception:  # closing is best effort: the server may be gone
        conn.terminate()
