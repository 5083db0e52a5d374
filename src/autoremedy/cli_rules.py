"""`autoremedy test` and `autoremedy backtest`: rules as code, checked without a daemon.

Both load the rules and playbooks with the daemon's own loader and decide through `decide.replay`, so what they
report is what the daemon would do. Exit codes: 0 all is well, 1 a case failed (or the store could not be read),
2 a file is wrong (file:line on stderr).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autoremedy.actions.registry import default_registry
from autoremedy.config.rule_tests import LoadedCase, load_rule_tests, rule_test_paths
from autoremedy.config.ruleset import load_ruleset
from autoremedy.config.secrets import templating_for
from autoremedy.config.settings import Settings
from autoremedy.config.yamlfile import FileProblems
from autoremedy.decide.backtest import BacktestReport, backtest
from autoremedy.decide.guardrails import compile_window, counted_window
from autoremedy.decide.planning import Ruleset
from autoremedy.decide.redact import redact
from autoremedy.decide.replay import Replay
from autoremedy.decide.rule_tests import CaseResult, Defaults, run_case, uncovered_rules
from autoremedy.models.durations import parse_duration
from autoremedy.store.base import StoreUnavailable
from autoremedy.store.history import History
from autoremedy.store.postgres import read_postgres_history
from autoremedy.store.sqlite import read_sqlite_history

EXIT_FAILED = 1
EXIT_FILE_ERROR = 2
CHANGES_SHOWN = 50


@dataclass(frozen=True, slots=True)
class Candidate:
    """The rules and playbooks to test: the config's, or other folders."""

    rules_dir: Path | None = None
    playbooks_dir: Path | None = None

    def load(self, settings: Settings) -> Ruleset:
        """As the daemon loads them (`app.load_rules`), from these folders."""
        return load_ruleset(
            self.rules_dir or settings.rules_dir,
            self.playbooks_dir or settings.playbooks_dir,
            actions=default_registry(settings).input_models(),
            templating=templating_for(settings),
        )


def _mutates(settings: Settings) -> Callable[[str], bool]:
    """As the daemon's decider asks it: does this action change something (unknown ones are assumed to)."""
    registry = default_registry(settings)
    return lambda action: registry[action].mutates if action in registry else True


# -- autoremedy test ------------------------------------------------------------------------------------------


def run_rule_tests(
    settings: Settings, paths: Sequence[Path], candidate: Candidate, *, output: str, coverage: bool
) -> int:
    try:
        ruleset = candidate.load(settings)
        cases = load_rule_tests(rule_test_paths(paths or [settings.rule_tests_dir]), ruleset)
    except FileProblems as exc:
        print(exc, file=sys.stderr)
        return EXIT_FILE_ERROR
    defaults = Defaults(guardrails=settings.guardrails, dry_run=settings.dry_run, action_mutates=_mutates(settings))
    # Rendered inputs are printed (expected vs got): configured secrets are masked in them, as in every record.
    results = [_redacted(run_case(loaded.case, ruleset, source=loaded.source, defaults=defaults)) for loaded in cases]
    uncovered = uncovered_rules(ruleset, results) if coverage else None
    if output == "json":
        print(json.dumps(_tests_json(results, uncovered, ruleset), indent=2))
    else:
        _print_tests(cases, results, uncovered, ruleset)
    return 0 if all(result.passed for result in results) else EXIT_FAILED


def _redacted(result: CaseResult) -> CaseResult:
    mismatches = tuple(replace(m, expected=redact(m.expected), got=redact(m.got)) for m in result.mismatches)
    return replace(result, mismatches=mismatches)


def _tests_json(results: Sequence[CaseResult], uncovered: list[str] | None, ruleset: Ruleset) -> dict[str, Any]:
    document: dict[str, Any] = {
        "passed": sum(1 for r in results if r.passed),
        "failed": sum(1 for r in results if not r.passed),
        "cases": [
            {
                "name": r.name,
                "source": r.source,
                "passed": r.passed,
                "mismatches": [
                    {"alert": m.step, "at": m.at, "field": m.field, "expected": m.expected, "got": m.got}
                    for m in r.mismatches
                ],
            }
            for r in results
        ],
    }
    if uncovered is not None:
        sources = {compiled.rule.name: compiled.source for compiled in ruleset.rules}
        document["uncovered"] = [{"rule": name, "source": sources[name]} for name in uncovered]
    return document


def _print_tests(
    cases: Sequence[LoadedCase], results: Sequence[CaseResult], uncovered: list[str] | None, ruleset: Ruleset
) -> None:
    by_file: dict[str, list[CaseResult]] = {}
    for loaded, result in zip(cases, results, strict=True):
        by_file.setdefault(loaded.file, []).append(result)
    for file, file_results in by_file.items():
        print(f"Unit Testing: {file}")
        failed = [r for r in file_results if not r.passed]
        if not failed:
            print("  SUCCESS\n")
            continue
        print("  FAILED:")
        for result in failed:
            print(f"    {result.source}: {result.name}")
            for mismatch in result.mismatches:
                print(f"      {mismatch}")
        print()
    passed = sum(1 for r in results if r.passed)
    print(f"{passed} passed, {len(results) - passed} failed")
    if uncovered is not None:
        sources = {compiled.rule.name: compiled.source for compiled in ruleset.rules}
        total = len(ruleset.rules)
        print(f"coverage: {total - len(uncovered)}/{total} rules matched by a case")
        for name in uncovered:
            print(f"  not matched: {name} ({sources[name]})")


# -- autoremedy backtest --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime


def parse_when(text: str, now: datetime) -> datetime:
    """A duration ago (`7d`, `90m`) or a time (RFC 3339; UTC when it names no zone)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r}: neither a duration (7d, 90m) nor a time (2026-01-05T12:00:00Z)") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def run_backtest(
    settings: Settings, window: Window, candidate: Candidate, *, output: str, run_duration: timedelta
) -> int:
    try:
        ruleset = candidate.load(settings)
    except FileProblems as exc:
        print(exc, file=sys.stderr)
        return EXIT_FILE_ERROR
    with _no_cycle_collection():
        report = _replay_history(settings, window, ruleset, run_duration)
    if output == "json":
        document = {"since": window.since.isoformat(), "until": window.until.isoformat(), **report.as_json()}
        print(json.dumps(document, indent=2))
    else:
        _print_backtest(report, window)
    return 0


def _replay_history(settings: Settings, window: Window, ruleset: Ruleset, run_duration: timedelta) -> BacktestReport:
    warmup = _warmup(ruleset, settings)
    history = read_history(settings, events_since=window.since - warmup, runs_since=window.since, until=window.until)
    replay = Replay(
        ruleset,
        guardrails=settings.guardrails,
        windows=[compile_window(w) for w in settings.guardrails.maintenance_windows],
        dry_run=settings.dry_run,
        run_duration=run_duration,
        action_mutates=_mutates(settings),
    )
    return backtest(replay, history.events, history.runs, report_from=window.since)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The history (100,000 events of small dicts) stays alive until the report and makes no reference cycles:
    the cycle collector would walk it again and again as the replay allocates, for nothing to free."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _warmup(ruleset: Ruleset, settings: Settings) -> timedelta:
    """How much history before the window the guardrails look back on (cooldowns, budgets, the breaker)."""
    spans = [counted_window(compiled.rule) for compiled in ruleset.rules]
    return max([*spans, settings.guardrails.breaker.within])


def read_history(settings: Settings, *, events_since: datetime, runs_since: datetime, until: datetime) -> History:
    if settings.is_postgres:
        return asyncio.run(
            read_postgres_history(settings.store.url, events_since=events_since, runs_since=runs_since, until=until)
        )
    path = settings.sqlite_path
    if path is None:
        raise StoreUnavailable("store.url must be sqlite:///path or postgresql://user@host/db")
    return read_sqlite_history(path, events_since=events_since, runs_since=runs_since, until=until)


def _print_backtest(report: BacktestReport, window: Window) -> None:
    print(f"backtest: {report.events} events from {window.since.isoformat()} to {window.until.isoformat()}")
    print(f"recorded: {report.recorded_runs} runs started by the daemon\n")
    width = max([len("RULE"), *(len(name) for name in report.rules)])
    print(f"{'RULE':<{width}}  MATCHED  RUNS  FAILED  BLOCKED")
    for name, counts in report.rules.items():
        blocked = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.blocked.items())) or "-"
        print(f"{name:<{width}}  {counts.matched:>7}  {counts.runs:>4}  {counts.failed:>6}  {blocked}")
    summary = report.as_json()["summary"]
    print(f"\nchanges: {summary['appear']} appear, {summary['disappear']} disappear, {summary['change']} change")
    for change in report.changes[:CHANGES_SHOWN]:
        print("  " + _change_line(change))
    if len(report.changes) > CHANGES_SHOWN:
        print(f"  ... {len(report.changes) - CHANGES_SHOWN} more (--output json lists every one)")


def _change_line(change: dict[str, Any]) -> str:
    new, old = change["backtest"], change["recorded"]
    head = f"{change['at']} {change['alertname'] or change['fingerprint']} ({change['status']}) {change['rule']}:"
    if change["change"] == "appear":
        was = f"recorded {old['status']} ({old['guardrail']})" if old else "not recorded"
        return f"{head} would start {new['playbook']} on {new['target']}; {was}"
    if change["change"] == "disappear":
        now = f"{new['verdict']}: {new['detail']}" if new else "no longer matches"
        return f"{head} would not start {old['playbook']} on {old['target']} ({now})"
    return f"{head} {old['playbook']} on {old['target']} becomes {new['playbook']} on {new['target']}"
