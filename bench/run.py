"""`make bench`: autoremedy's ingest benchmark, every server on this machine, one after another, over loopback.

1. Webhook throughput with wrk (-t1 -c32 -d10s --latency, after a warm-up): a bare aiohttp handler (the ceiling),
   autoremedy on SQLite and on PostgreSQL; 1-alert webhooks with new alerts, the same webhook again and again
   (duplicate deliveries), 50-alert webhooks with new alerts. Each autoremedy row is a fresh daemon and database.
2. Alert-to-first-action latency at a steady 100 alerts/s (open loop) on SQLite and PostgreSQL.
3. py-spy profiles of autoremedy on SQLite under the 1-alert and the 50-alert load.
4. 1,000,000 alerts into autoremedy on SQLite: peak RSS, then how fast the decider decides the backlog.
5. The storm (issue 14): 10,000 alerts in 50-alert webhooks from 8 senders, every 50th acted on (http.request to a
   receiver here), default engine settings: end-to-end alerts/s and acknowledgement -> action, SQLite and PostgreSQL.
6. The decide rate on a backlog of 100,000 stored events: alone, and while 50-alert webhooks saturate the daemon.

Results: bench/results/latest.json, bench/results/latest.md (also printed), and the generated part of
docs/benchmarks.md. Options shorten it for a quick look (`--quick`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from tests.support.postgres import PostgresServer, start_postgres  # noqa: E402

from bench import harness, ingest, latency, pgattribution, profile, report, storm  # noqa: E402
from bench.harness import Load, Server, Template  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
ONE = Load(1, "unique", "1 alert, new alerts")
DUPLICATE = Load(1, "duplicate", "1 alert, duplicate deliveries")
FIFTY = Load(50, "unique", "50 alerts, new alerts")
ONE_128 = Load(1, "unique", "1 alert, new alerts, 128 connections (diagnostic)", connections=128)
SQLITE_URL = "sqlite:///var/autoremedy.db"
PARTS = ("throughput", "latency", "profiles", "ingest", "storm", "backlog")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="each measured wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="wrk warm-up before each measured run")
    parser.add_argument("--latency-rate", type=float, default=100.0, help="alerts per second")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--ingest-alerts", type=int, default=1_000_000)
    parser.add_argument("--ingest-max-seconds", type=float, default=240.0, help="give up the ingest after this")
    parser.add_argument("--drain-seconds", type=float, default=60.0, help="how long to watch the worker drain")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--decide-seconds",
        type=float,
        default=10.0,
        help="after the 50-alert load: watch the worker decide the backlog",
    )
    parser.add_argument("--storm-alerts", type=int, default=10_000)
    parser.add_argument("--backlog-events", type=int, default=100_000)
    parser.add_argument("--backlog-ingest-seconds", type=float, default=10.0)
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run (default all: {','.join(PARTS)}); the doc is rewritten only for all",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the storm and latency parts on this git revision (exported with git archive, e.g. main): "
        "a same-run ratio",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--pg-attribution",
        action="store_true",
        help="PostgreSQL latency rows: log every statement and count each transaction's shape per alert (where the "
        "commits come from); the logging slows the server, so the latency of such a run is not a number to report",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the generated part of the doc")
    parser.add_argument("--quick", action="store_true", help="short runs and 100,000 alerts: a smoke test")
    args = parser.parse_args()
    args.parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if set(args.parts) != set(PARTS):
        args.no_doc = True
    if args.quick:
        args.seconds, args.warmup, args.latency_seconds, args.profile_seconds = 3, 1, 5.0, 3
        args.ingest_alerts, args.drain_seconds, args.decide_seconds, args.no_doc = 100_000, 6.0, 4.0, True
        args.backlog_events, args.backlog_ingest_seconds = 20_000, 4.0
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- throughput ------------------------------------------------------------------------------------------------


async def throughput(server: Server, template_path: Path, load: Load, args: argparse.Namespace) -> dict[str, Any]:
    is_autoremedy = server.config_dir is not None
    if args.warmup > 0:
        await asyncio.to_thread(harness.run_wrk, server.url, template_path, load, seconds=args.warmup)
    async with aiohttp.ClientSession() as session:
        before = await harness.alert_counters(session, server) if is_autoremedy else {}
        summary, cpu = await harness.measure_wrk(server, template_path, load, seconds=args.seconds, warmup_s=0)
        after = await harness.alert_counters(session, server) if is_autoremedy else {}
        backlog = await harness.queue_depth(session, server) if is_autoremedy else None
    seconds = summary["duration_us"] / 1e6
    row: dict[str, Any] = {
        "server": server.name,
        "load": load.label,
        "load_key": f"{load.per_request}-{load.mode}" + ("" if load.connections == 32 else f"-c{load.connections}"),
        "connections": load.connections,
        "alerts_per_request": load.per_request,
        "requests_per_s": round(summary["requests"] / seconds, 1),
        "alerts_per_s": round(summary["requests"] * load.per_request / seconds, 1),
        "wrk": summary,
        "cpu": cpu,
        "server_cpu_us_per_request": round(cpu["server_cores"] * 1e6 * seconds / max(1, summary["requests"]), 1),
        "backlog_after": backlog,
    }
    if is_autoremedy:
        # What the daemon itself counted: at least what wrk saw answered (requests in flight at the end add more).
        row["server_counted_alerts"] = after["received"] - before["received"]
        row["server_counted_duplicates"] = after["duplicates"] - before["duplicates"]
    log(
        f"{server.name:<24} {load.label:<30} {row['requests_per_s']:>9,.0f} req/s {row['alerts_per_s']:>9,.0f} alerts/s"
        f"  p50 {summary['p50_us'] / 1000:.1f} ms  p99 {summary['p99_us'] / 1000:.1f} ms  cpu {cpu}"
    )
    return row


async def bare_rows(workdir: Path, template_path: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    server = await harness.start_bare(workdir / "bare")
    try:
        return [await throughput(server, template_path, load, args) for load in (ONE, FIFTY)]
    finally:
        server.stop()


async def autoremedy_rows(
    workdir: Path, template_path: Path, args: argparse.Namespace, store: str, pg: PostgresServer | None
) -> list[dict[str, Any]]:
    rows = []
    loads = (ONE, DUPLICATE, FIFTY, ONE_128) if pg is None else (ONE, DUPLICATE, FIFTY)
    for index, load in enumerate(loads):
        url = SQLITE_URL if pg is None else await pg.create_database(f"bench_{index}")
        server = await harness.start_autoremedy(
            workdir / f"{store}-{index}",
            f"autoremedy ({store})",
            store_url=url,
            extra_pids=pg.pids if pg is not None else lambda: [],
        )
        try:
            rows.append(await throughput(server, template_path, load, args))
            if load is FIFTY and args.decide_seconds > 0:
                # The worker shares the process with the webhook: how fast it decides once the load stops.
                rows[-1]["worker_after_load"] = await ingest.drain(server, max_seconds=args.decide_seconds)
                log(f"{server.name}: the decider decides {rows[-1]['worker_after_load']['decided_per_s']} events/s")
        finally:
            server.stop()
    return rows


# -- alert to first action -------------------------------------------------------------------------------------


async def latency_row(
    workdir: Path,
    template: Template,
    args: argparse.Namespace,
    store: str,
    pg: PostgresServer | None,
    *,
    baseline: str | None = None,
) -> dict[str, Any]:
    receiver = await latency.Receiver().start()
    rule, playbook = harness.action_rule_and_playbook(receiver.url)
    dbname = "bench_latency" if baseline is None else f"bench_latency_{baseline.replace('/', '_')}"
    url = SQLITE_URL if pg is None else await pg.create_database(dbname)
    server = await harness.start_autoremedy(
        workdir / (f"{store}-latency" + ("" if baseline is None else f"-{baseline.replace('/', '-')}")),
        f"autoremedy ({store})" if baseline is None else f"autoremedy {baseline} ({store})",
        store_url=url,
        rules=[rule],
        playbooks=[playbook],
        extra_pids=pg.pids if pg is not None else lambda: [],
        source=export_revision(baseline, workdir) if baseline is not None else None,
    )
    try:
        attributing = pg is not None and args.pg_attribution
        if attributing and pg is not None:
            await pgattribution.enable(pg)
        log_offset = pgattribution.log_path(pg).stat().st_size if attributing and pg is not None else 0
        before = await pg_counters(pg, dbname) if pg is not None else None
        row = await latency.measure_latency(
            server, receiver, template, rate=args.latency_rate, seconds=args.latency_seconds, warmup_s=2.0
        )
        if pg is not None and before is not None:
            await asyncio.sleep(1.5)  # backends report their statistics at most once a second
            after = await pg_counters(pg, dbname)
            alerts = int(args.latency_rate * 2.0) + int(args.latency_rate * args.latency_seconds)
            row["postgres_per_alert"] = {name: round((after[name] - before[name]) / alerts, 1) for name in after}
            if attributing:
                await pgattribution.disable(pg)
                shapes = pgattribution.transactions(pgattribution.log_path(pg), dbname=dbname, offset=log_offset)
                row["postgres_transactions"] = pgattribution.table(shapes, alerts)
                for line in row["postgres_transactions"]:
                    log(f"  {line['per_alert']:>6} per alert  {line['count']:>6}  {line['transaction']}")
        if args.profile_seconds > 0:  # a separate window: the sampler's CPU does not touch the numbers above
            raw = RESULTS / f"profile-latency-{store.lower()}.txt"
            count = int(args.latency_rate * (args.profile_seconds + 1))
            _, sampled = await asyncio.gather(
                latency.open_loop(server, template, rate=args.latency_rate, count=count),
                sample(server, args.profile_seconds, raw),
            )
            title = f"{server.name} at {args.latency_rate:.0f} alerts/s, each alert acted on (the latency scenario)"
            row["profile"] = {"title": title, "load_text": f"{args.latency_rate:.0f} alerts/s", **sampled}
    finally:
        server.stop()
        await receiver.stop()
    if pg is None:
        db = (server.config_dir or workdir) / "var" / "autoremedy.db"
        rows = await asyncio.to_thread(latency.stage_rows_sqlite, db)
    else:
        rows = await latency.stage_rows_postgres(url)
    row["stages"] = latency.stages(row.pop("sent_wall"), receiver.arrivals_wall, rows)
    row["server"], row["baseline"] = server.name, baseline
    log(f"{server.name}: alert to first action {row}")
    return row


# -- postgres --------------------------------------------------------------------------------------------------


async def postgres_settings(pg: PostgresServer) -> str:
    # tests.support.postgres runs with fsync=off (fast tests); a benchmark of a durable store runs with the
    # server's defaults: WAL flushed to disk at every commit.
    await pg.fetchval("ALTER SYSTEM SET fsync = on")
    await pg.fetchval("SELECT pg_reload_conf()")
    await asyncio.sleep(0.5)
    names = ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
    values = [f"{name}={await pg.fetchval(f'SHOW {name}')}" for name in names]
    return ", ".join(values)


async def pg_counters(pg: PostgresServer, dbname: str) -> dict[str, float]:
    """Commits in one database and WAL flushes to disk (fsync) of the server, so far."""
    commits = await pg.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", dbname)
    syncs = await pg.fetchval("SELECT wal_sync FROM pg_stat_wal")
    return {"commits": float(commits or 0), "wal_syncs": float(syncs or 0)}


async def postgres_part(
    workdir: Path, template: Template, template_path: Path, args: argparse.Namespace, results: dict[str, Any]
) -> str:
    """The PostgreSQL rows of every part asked for, added to `results`; the server's settings."""
    pg = await start_postgres(workdir / "postgres")
    parts = set(args.parts)
    try:
        settings = await postgres_settings(pg)
        log(f"PostgreSQL on port {pg.port}: {settings}")
        if "throughput" in parts:
            results["throughput"] += await autoremedy_rows(workdir, template_path, args, "PostgreSQL", pg)
        if "latency" in parts:
            results["latency"].append(await latency_row(workdir, template, args, "PostgreSQL", pg))
            if args.baseline:
                row = await latency_row(workdir, template, args, "PostgreSQL", pg, baseline=args.baseline)
                results["latency"].append(row)
        if "storm" in parts:
            results["storm"].append(await storm_row(workdir, template, args, "PostgreSQL", pg))
            if args.baseline:
                row = await storm_row(workdir, template, args, "PostgreSQL", pg, baseline=args.baseline)
                results["storm"].append(row)
        if "backlog" in parts:
            results["backlog"].append(await backlog_rows(workdir, template, args, "PostgreSQL", pg))
    finally:
        pg.stop("immediate")
    return settings


# -- profiles --------------------------------------------------------------------------------------------------


async def profile_run(
    workdir: Path, template_path: Path, args: argparse.Namespace, load: Load, *, name: str, svg: bool
) -> dict[str, Any]:
    server = await harness.start_autoremedy(workdir / f"profile-{name}", "autoremedy (SQLite)", store_url=SQLITE_URL)
    seconds = args.profile_seconds
    wrk_seconds = args.warmup + seconds * (2 if svg else 1) + 2
    outcome: dict[str, Any] = {}

    def load_it() -> None:
        outcome["wrk"] = harness.run_wrk(server.url, template_path, load, seconds=wrk_seconds)

    thread = threading.Thread(target=load_it, name="wrk")
    try:
        thread.start()
        await asyncio.sleep(args.warmup)
        raw = RESULTS / f"profile-{name}.txt"
        sampled = await sample(server, seconds, raw)
        if svg:
            await asyncio.to_thread(profile.record, server.pid, seconds, RESULTS / "profile.svg", raw=False)
        await asyncio.to_thread(thread.join)
    finally:
        server.stop()
    summary = outcome["wrk"]
    rps = summary["requests"] / (summary["duration_us"] / 1e6)
    log(f"profile {name}: {rps:,.0f} req/s while sampled; collapsed stacks in {raw}")
    return {
        "title": f"autoremedy (SQLite) under wrk, {load.label}",
        "load_text": f"{rps:,.0f} requests/s",
        **sampled,
    }


async def sample(server: Server, seconds: int, raw: Path) -> dict[str, Any]:
    """py-spy on the daemon for `seconds` (collapsed stacks to `raw`), with each thread's CPU from /proc and the
    CPU of the server's other processes (PostgreSQL's) meanwhile."""
    before, others, started = profile.thread_cpu(server.pid), harness.cpu_seconds(server.extra_pids()), time.monotonic()
    await asyncio.to_thread(profile.record, server.pid, seconds, raw, raw=True)
    wall = time.monotonic() - started
    after, others = profile.thread_cpu(server.pid), harness.cpu_seconds(server.extra_pids()) - others
    cores = {tid: round((cpu - before.get(tid, 0.0)) / wall, 2) for tid, cpu in after.items()}
    return {
        "raw_file": str(raw.relative_to(ROOT)),
        "summary": profile.summarise(raw, seconds, cores),
        "process_cores": round(sum(cores.values()), 2),
        "other_server_processes_cores": round(others / wall, 2) if server.extra_pids() else None,
    }


# -- 1,000,000 alerts ------------------------------------------------------------------------------------------


async def ingest_part(workdir: Path, template: Template, args: argparse.Namespace) -> dict[str, Any]:
    server = await harness.start_autoremedy(workdir / "ingest", "autoremedy (SQLite)", store_url=SQLITE_URL)
    try:
        result = await ingest.ingest(
            server,
            template,
            alerts=args.ingest_alerts,
            per_request=50,
            connections=32,
            max_seconds=args.ingest_max_seconds,
        )
        log(
            f"ingested {result['alerts_acked']:,} alerts in {result['seconds']} s; VmHWM {result['vm_hwm_mb']} MB, "
            f"queue depth {result['queue_depth_after']:,}"
        )
        result["drain"] = await ingest.drain(server, max_seconds=args.drain_seconds)
        db = (server.config_dir or workdir) / "var" / "autoremedy.db"
        result["sqlite_file_mb"] = round(db.stat().st_size / 2**20, 1)
        log(f"worker afterwards: {result['drain']['decided_per_s']} decisions/s, drained={result['drain']['drained']}")
    finally:
        server.stop()
    return result


# -- storm and backlog (issue 14) ------------------------------------------------------------------------------


def export_revision(revision: str, workdir: Path) -> Path:
    """The source tree of a git revision, exported (not checked out) under workdir."""
    target = workdir / f"baseline-{revision.replace('/', '-')}"
    if target.exists():
        return target
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


async def storm_row(
    workdir: Path,
    template: Template,
    args: argparse.Namespace,
    store: str,
    pg: PostgresServer | None,
    *,
    baseline: str | None = None,
) -> dict[str, Any]:
    receiver = await latency.Receiver().start()
    rule, playbook = storm.storm_rule_and_playbook(receiver.url)
    label = "" if baseline is None else f"-{baseline}"
    url = SQLITE_URL if pg is None else await pg.create_database(f"bench_storm{label.replace('-', '_')}")
    name = f"autoremedy ({store})" if baseline is None else f"autoremedy {baseline} ({store})"
    server = await harness.start_autoremedy(
        workdir / f"{store}-storm{label}",
        name,
        store_url=url,
        rules=[rule],
        playbooks=[playbook],
        extra_pids=pg.pids if pg is not None else lambda: [],
        engine={},  # the defaults: max_queue_depth, decide_batch, concurrency
        source=export_revision(baseline, workdir) if baseline is not None else None,
    )
    try:
        dbname = url.rsplit("/", 1)[-1]
        counters = (lambda: pg_counters(pg, dbname)) if pg is not None else None
        row = await storm.storm(server, receiver, template, alerts=args.storm_alerts, counters=counters)
    finally:
        server.stop()
        await receiver.stop()
    row["server"], row["baseline"] = server.name, baseline
    log(f"{server.name}: storm {row}")
    return row


async def backlog_rows(
    workdir: Path, template: Template, args: argparse.Namespace, store: str, pg: PostgresServer | None
) -> dict[str, Any]:
    rows: dict[str, Any] = {"server": f"autoremedy ({store})", "events": args.backlog_events}
    for name in ("alone", "under_ingest"):
        url = SQLITE_URL if pg is None else await pg.create_database(f"bench_backlog_{name}")
        filled: dict[str, float] = {}

        async def fill(root: Path, url: str = url, filled: dict[str, float] = filled) -> None:
            filled["seconds"] = await storm.prefill(url, root, args.backlog_events)

        before = await pg_counters(pg, f"bench_backlog_{name}") if pg is not None else None
        server = await harness.start_autoremedy(
            workdir / f"{store}-backlog-{name}",
            f"autoremedy ({store})",
            store_url=url,
            extra_pids=pg.pids if pg is not None else lambda: [],
            engine={"max_queue_depth": 10_000_000},
            before_start=fill,
        )
        try:
            if name == "alone":
                row = await storm.backlog_alone(server, events=args.backlog_events, max_seconds=120)
            else:
                row = await storm.backlog_under_ingest(server, template, seconds=args.backlog_ingest_seconds)
        finally:
            server.stop()
        if pg is not None and before is not None and name == "alone":
            await asyncio.sleep(1.5)  # backends report their statistics at most once a second
            after = await pg_counters(pg, f"bench_backlog_{name}")
            row["commits_per_event"] = round((after["commits"] - before["commits"]) / args.backlog_events, 4)
        row["prefill_s"] = round(filled.get("seconds", 0.0), 1)
        rows[name] = row
        log(f"{rows['server']}: backlog {name}: {row}")
    alone = rows["alone"]["decided_per_s"]
    rows["ratio_under_ingest"] = round(rows["under_ingest"]["decided_per_s"] / alone, 3) if alone else None
    return rows


# -- main ------------------------------------------------------------------------------------------------------


def add_ratios(rows: list[dict[str, Any]]) -> None:
    bare = {
        r["alerts_per_request"]: r["requests_per_s"]
        for r in rows
        if r["server"] == "bare aiohttp" and r["connections"] == 32
    }
    for row in rows:
        if row["server"] != "bare aiohttp" and row["alerts_per_request"] in bare and row["connections"] == 32:
            row["bare_requests_per_s"] = bare[row["alerts_per_request"]]
            row["ratio_to_bare"] = round(row["requests_per_s"] / bare[row["alerts_per_request"]], 3)


def settings_text(args: argparse.Namespace, pg_settings: str | None) -> str:
    text = (
        f"wrk -t1 -c32 -d{args.seconds}s --latency after a {args.warmup} s warm-up (bench/webhook.lua: bodies from "
        "examples/firing.json, a new fingerprint per alert); autoremedy with logging at warning, "
        "engine.max_queue_depth 10,000,000 (no backpressure), breaker max_runs 10^9, engine.concurrency 4 "
        "(default), one rule that matches nothing (the decider still claims and decides every event); "
        "SQLite WAL with synchronous=NORMAL (default); a fresh daemon and database for every row"
    )
    if pg_settings:
        text += f"; PostgreSQL 15 on loopback TCP, pool_size 10 (default), {pg_settings}"
    return text + "."


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": harness.machine_info(),
        "args": vars(args),
        "throughput": [],
        "latency": [],
    }
    template = Template.from_example()
    template_path = template.write(workdir / "template.txt")
    log(f"machine: {results['machine']}")
    parts = set(args.parts)
    if "throughput" in parts:
        results["throughput"] = await bare_rows(workdir, template_path, args)
        results["throughput"] += await autoremedy_rows(workdir, template_path, args, "SQLite", None)
    if "latency" in parts:
        results["latency"] = [await latency_row(workdir, template, args, "SQLite", None)]
        if args.baseline:
            results["latency"].append(
                await latency_row(workdir, template, args, "SQLite", None, baseline=args.baseline)
            )
    if "storm" in parts:
        results["storm"] = [await storm_row(workdir, template, args, "SQLite", None)]
        if args.baseline:
            results["storm"].append(await storm_row(workdir, template, args, "SQLite", None, baseline=args.baseline))
    if "backlog" in parts:
        results["backlog"] = [await backlog_rows(workdir, template, args, "SQLite", None)]
    pg_settings = None
    if not args.no_postgres and parts & {"throughput", "latency", "storm", "backlog"}:
        pg_settings = await postgres_part(workdir, template, template_path, args, results)
    add_ratios(results["throughput"])
    results["settings"] = settings_text(args, pg_settings)
    if "profiles" in parts:
        results["profiles"] = [
            await profile_run(workdir, template_path, args, ONE, name="1-alert", svg=True),
            await profile_run(workdir, template_path, args, FIFTY, name="50-alert", svg=False),
            *(row.pop("profile") for row in results["latency"] if "profile" in row),
        ]
    if "ingest" in parts:
        results["ingest"] = await ingest_part(workdir, template, args)
    results["targets"] = report.targets(results)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    return results


def main() -> None:
    args = parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autoremedy-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    # A run of some parts keeps its results beside the full run's, e.g. latest-storm-backlog.json.
    name = "latest" if set(args.parts) == set(PARTS) else "-".join(["latest", *args.parts])
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    generated = report.markdown(results)
    (RESULTS / f"{name}.md").write_text(generated)
    print(generated)
    if not args.no_doc and report.update_doc(DOC, generated):
        log(f"updated the generated part of {DOC.relative_to(ROOT)}")
    log(f"results in {RESULTS.relative_to(ROOT)}/{name}.json and {name}.md")


if __name__ == "__main__":
    main()
