"""The `autoremedy` command: serve, validate, simulate, schema, runs and the control commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoremedy import __version__
from autoremedy.actions.reference import actions_markdown
from autoremedy.actions.registry import default_registry
from autoremedy.app import ConfigError, load_rules, serve
from autoremedy.cli_client import ApiClient, ApiError, print_run, print_runs, print_status
from autoremedy.cli_rules import EXIT_FILE_ERROR, Candidate, Window, parse_when, run_backtest, run_rule_tests
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.config.schema import (
    PLAYBOOK_SCHEMA,
    RULE_TESTS_SCHEMA,
    RULES_SCHEMA,
    playbook_schema,
    rule_tests_schema,
    rules_schema,
)
from autoremedy.config.secrets import configured_secrets
from autoremedy.config.settings import ScopeName, Settings, load_settings
from autoremedy.config.yamlfile import FileProblems
from autoremedy.decide.planning import decide, matching_rules
from autoremedy.decide.redact import redact, register_secrets
from autoremedy.models.durations import parse_duration
from autoremedy.models.events import events_from_payload
from autoremedy.models.webhook import Alert, WebhookPayload
from autoremedy.observability import configure_logging
from autoremedy.store.base import StoreUnavailable

DEFAULT_CONFIG = Path("autoremedy.yaml")
DEFAULT_SCHEMA_DIR = Path("schemas")
CREDENTIAL_HELP = (
    "credential: $AUTOREMEDY_TOKEN, else the first server.auth.tokens (then users) entry of the config with the "
    "scope the command needs (control for approve, deny, pause, resume, breaker; read for status and runs)"
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (FileProblems, ConfigError, StoreUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoremedy", description="Alert-driven, guarded self-healing.")
    parser.add_argument("--version", action="version", version=f"autoremedy {__version__}")
    parser.add_argument("--config", type=Path, help="config file (env AUTOREMEDY_CONFIG; default ./autoremedy.yaml)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    commands.add_parser("serve", help="run the daemon").set_defaults(handler=_serve)
    commands.add_parser("validate", help="check every rule and playbook").set_defaults(handler=_validate)
    simulate = commands.add_parser("simulate", help="show what an alert would do, touching nothing")
    simulate.add_argument("alert_file", type=Path, help="an Alertmanager webhook body, or one alert, as JSON")
    simulate.set_defaults(handler=_simulate)
    schema = commands.add_parser("schema", help="write JSON Schema for rules, playbooks and rule tests")
    schema.add_argument("--output", type=Path, default=DEFAULT_SCHEMA_DIR, help="folder (default: ./schemas)")
    schema.add_argument("--actions-doc", type=Path, help="also write the action reference (Markdown) here")
    schema.set_defaults(handler=_schema)

    runs = commands.add_parser("runs", help="list and show runs (through the HTTP API)")
    runs.add_argument("--url", help="daemon base URL (default: from server.listen)")
    run_commands = runs.add_subparsers(required=True, metavar="ACTION")
    listing = run_commands.add_parser("list", help="recent runs, newest first")
    listing.add_argument("--status", help="only runs with this status")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_runs_list)
    show = run_commands.add_parser("show", help="one run with its steps and audit trail")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_runs_show)
    _control_commands(commands)
    _rules_as_code_commands(commands)
    _accept_config_everywhere(parser)
    return parser


def _accept_config_everywhere(parser: argparse.ArgumentParser) -> None:
    """`--config` after the subcommand too (`autoremedy validate --config x.yaml`), on every (sub)subcommand. The
    default is SUPPRESS so that a subcommand without it keeps the value given before the subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in dict.fromkeys(action.choices.values()):
                if "--config" not in subparser._option_string_actions:
                    subparser.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="config file")
                _accept_config_everywhere(subparser)


def _rules_as_code_commands(commands: Any) -> None:
    test = commands.add_parser("test", help="run rule tests: what rules and playbooks must do with alerts")
    test.add_argument("paths", nargs="*", type=Path, metavar="FILE|DIR", help="default: the config's rule_tests_dir")
    test.add_argument("--coverage", action="store_true", help="also list the rules no case matches")
    backtest = commands.add_parser("backtest", help="replay stored alerts through candidate rules (read-only)")
    backtest.add_argument("--since", required=True, help="a duration ago (7d) or a time (RFC 3339)")
    backtest.add_argument("--until", help="a duration ago or a time; default: now")
    backtest.add_argument(
        "--run-duration", default="0s", help="how long a started run keeps its target busy (default 0s)"
    )
    for command in (test, backtest):
        command.add_argument("--rules-dir", type=Path, help="candidate rules (default: the config's)")
        command.add_argument("--playbooks-dir", type=Path, help="candidate playbooks (default: the config's)")
        command.add_argument("--output", choices=["text", "json"], default="text")
    test.set_defaults(handler=_test)
    backtest.set_defaults(handler=_backtest)


def _test(args: argparse.Namespace) -> int:
    candidate = Candidate(args.rules_dir, args.playbooks_dir)
    try:
        settings = _settings(args)
    except (FileProblems, ConfigError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_FILE_ERROR
    return run_rule_tests(settings, args.paths, candidate, output=args.output, coverage=args.coverage)


def _backtest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    now = SYSTEM_CLOCK.now()
    try:
        window = Window(parse_when(args.since, now), parse_when(args.until, now) if args.until else now)
        run_duration = parse_duration(args.run_duration)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FILE_ERROR
    candidate = Candidate(args.rules_dir, args.playbooks_dir)
    return run_backtest(settings, window, candidate, output=args.output, run_duration=run_duration)


def _control_commands(commands: Any) -> None:
    commands.add_parser("status", help="queue, active runs, breaker, pauses").set_defaults(handler=_status)
    for name, helptext in (("approve", "approve a run held for approval"), ("deny", "deny a run held for approval")):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("run_id")
        command.add_argument("--reason", default="")
        command.add_argument("--by", help="a note of who decides (the audit records the token's name)")
        command.set_defaults(handler=_decide_run, decision=name)
    for name, helptext in (("pause", "pause automation, all or one rule"), ("resume", "resume automation")):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("rule", nargs="?", help="a rule's name; absent: all automation")
        command.add_argument("--reason", default="")
        command.add_argument("--by", help="a note of who (the audit records the token's name)")
        command.set_defaults(handler=_pause, action=name)
    breaker = commands.add_parser("breaker", help="the global circuit breaker")
    breaker.add_argument("action", choices=["close"])
    breaker.set_defaults(handler=_breaker)
    for command in ("status", "approve", "deny", "pause", "resume", "breaker"):
        commands.choices[command].add_argument("--url", help="daemon base URL (default: from server.listen)")
        commands.choices[command].epilog = CREDENTIAL_HELP


def _status(args: argparse.Namespace) -> int:
    print_status(_client(args).status())
    return 0


def _decide_run(args: argparse.Namespace) -> int:
    run = _client(args, "control").post(
        f"/api/v1/runs/{args.run_id}/{args.decision}", {"reason": args.reason, "by": args.by}
    )
    print(f"run {run['id']}: {run['status']} ({run['reason']})")
    return 0


def _pause(args: argparse.Namespace) -> int:
    answer = _client(args, "control").post(
        f"/api/v1/{args.action}", {"rule": args.rule, "reason": args.reason, "by": args.by}
    )
    scope = answer.get("paused") or answer.get("resumed")
    print(f"{args.action}d: {scope}" if args.action == "pause" else f"resumed: {scope}")
    return 0


def _breaker(args: argparse.Namespace) -> int:
    answer = _client(args, "control").post("/api/v1/breaker/close", {})
    print("circuit breaker closed" + ("" if answer["was_open"] else " (it was not open)"))
    return 0


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    if os.environ.get("AUTOREMEDY_CONFIG"):
        return Path(os.environ["AUTOREMEDY_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _settings(args: argparse.Namespace) -> Settings:
    path = _config_path(args)
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    settings = load_settings(path)
    register_secrets(configured_secrets(settings))  # `simulate` prints rendered plans: mask them there too
    return settings


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(level=settings.logging.level, fmt=settings.logging.format)
    return asyncio.run(serve(settings))


def _validate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ruleset = load_rules(settings, default_registry(settings))
    for warning in ruleset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"ok: {len(ruleset.rules)} rules, {len(ruleset.playbooks)} playbooks")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ruleset = load_rules(settings, default_registry(settings))
    report = []
    for event in _events_from_file(args.alert_file):
        view = event.template_view()
        matched = matching_rules(ruleset, view["labels"], view["status"])
        plans = decide(ruleset, view, dry_run=settings.dry_run)
        report.append(
            {
                "fingerprint": event.fingerprint,
                "status": event.status,
                "matched_rules": [{"name": c.rule.name, "source": c.source} for c in matched],
                "plans": [redact(_plan_json(plan)) for plan in plans],
            }
        )
    print(json.dumps(report, indent=2))
    return 0


def _schema(args: argparse.Namespace) -> int:
    # Every action this build has, whatever the config says: the files are the same on every machine.
    registry = default_registry()
    files = {
        args.output / RULES_SCHEMA: json.dumps(rules_schema(), indent=2) + "\n",
        args.output / PLAYBOOK_SCHEMA: json.dumps(playbook_schema(registry.input_models()), indent=2) + "\n",
        args.output / RULE_TESTS_SCHEMA: json.dumps(rule_tests_schema(), indent=2) + "\n",
    }
    if args.actions_doc is not None:
        files[args.actions_doc] = actions_markdown(registry)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _plan_json(plan: Any) -> dict[str, Any]:
    return {
        "rule": plan.rule,
        "playbook": plan.playbook,
        "target": plan.target,
        "dry_run": plan.dry_run,
        "error": plan.error,
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "action": s.action,
                "with": s.inputs,
                "timeout_seconds": s.timeout_seconds,
                "retries": s.retries,
                "on_failure": s.on_failure,
            }
            for s in plan.steps
        ],
    }


def _events_from_file(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    try:
        payload = WebhookPayload.model_validate_json(text)
    except ValidationError:
        try:
            alert = Alert.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"{path}: neither an Alertmanager webhook body nor an alert:\n{exc}") from exc
        payload = WebhookPayload(version="4", status=alert.status, alerts=[alert])
    return events_from_payload(payload)


def _client(args: argparse.Namespace, scope: ScopeName = "read") -> ApiClient:
    return ApiClient.from_settings(_settings(args), url=args.url, scope=scope)


def _runs_list(args: argparse.Namespace) -> int:
    runs = _client(args).list_runs(status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        print_runs(runs)
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    run = _client(args).get_run(args.run_id)
    if args.json:
        print(json.dumps(run, indent=2))
    else:
        print_run(run)
    return 0
