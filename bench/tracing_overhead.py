"""Tracing overhead on W1 (GET /v1/users/{id}, cache off: one SQL statement per request, the path with
the most spans), three servers measured in the same run, interleaved:

  without   the service as of BASE (default: the merge base with main), exported with `git archive`:
            no tracing code at all
  off       this tree, no OTEL_* variables: tracing off (one test per instrumented place)
  10%       this tree, OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1, exporting over
            OTLP/HTTP to a local sink (this script, --sink) that accepts and drops the spans

    .venv/bin/python bench/tracing_overhead.py                 # 3 rounds of 10 s per server
    .venv/bin/python bench/tracing_overhead.py --rounds 5 --duration 15 --base main
    .venv/bin/python bench/tracing_overhead.py --spans-only     # only the in-process span cost (seconds)

Uses bench/run.py's database seeding, hot set, servers and wrk measurement (wrk, PostgreSQL and Redis as
bench/README.md says), and cleans up the same way. Prints the table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import run as suite  # bench/run.py (this script's folder is on sys.path)


def sink(port: int) -> None:
    """An OTLP/HTTP endpoint that answers every export with 200 and keeps nothing."""
    from aiohttp import web

    async def accept(request):
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", accept)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def new_run(args, only: tuple[str, ...]):
    """bench/run.py's options and run state for a wrk comparison of `only` (also used by hot_path.py):
    32 connections, 2 threads, a unique tag, a temporary folder; SIGTERM stops it like Ctrl-C."""
    opts = suite.Options(users=args.users, hot=5000, rounds=args.rounds, duration=args.duration, warmup=args.warmup,
                         connections=32, threads=2, w5_requests=0, only=only, write=False,
                         database_url=os.environ.get("DATABASE_URL", suite.DEFAULT_DATABASE_URL),
                         redis_url=os.environ.get("REDIS_URL", suite.DEFAULT_REDIS_URL), quick=False)
    tag = f"{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}"
    run = suite.Run(tag=tag, admin_url=opts.database_url, read_token=secrets.token_urlsafe(24),
                    write_token=secrets.token_urlsafe(24), cache_prefix=f"aw_bench_{tag}:")
    run.tmp = Path(tempfile.mkdtemp(prefix=f"aw_bench_{tag}_"))
    run.ids_file, run.tokens_file = run.tmp / "user_ids.txt", run.tmp / "session_tokens.txt"
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    return opts, run, tag


def export_tree(base: str, into: Path) -> Path:
    """The service as of `base` (git archive) in `into`, to run next to this one in the same rounds."""
    archive = subprocess.run(["git", "archive", base], cwd=suite.ROOT, capture_output=True, check=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start_in(server: suite.Server, tree: Path) -> None:
    """Start a server with `tree` as its working directory: `python -m service` imports the service from
    there (the current directory comes first on sys.path, before the editable install's finder)."""
    saved, suite.ROOT = suite.ROOT, tree
    try:
        server.start()
    finally:
        suite.ROOT = saved


def has_tracing_code(server: suite.Server) -> bool:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as answer:
        return b"db_statement_duration_seconds" in answer.read()


def span_cost() -> str:
    """The spans of one W1 request (server + its SQL statement) in process, by thread CPU time (steadier
    than wall time on a shared machine), with a batch processor and an exporter that drops everything."""
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    from service import tracing

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    def request():
        span, token, _ = tracing.start_server_span("GET", "/v1/users/{id}", {})
        with tracing.client_span("get_user_by_id", "postgresql", **{"db.operation.name": "get_user_by_id"}):
            pass
        if span is not None:  # sampled (the edge middleware's test)
            tracing.end_server_span(span, token, 200)

    lines = ["| sampler | µs of thread CPU per request (best of 7 × 5,000) |", "|---|---|"]
    for ratio in (0.0, 0.1, 1.0):
        tracing.install(BatchSpanProcessor(Drop()), sampler=TraceIdRatioBased(ratio))
        best = float("inf")
        for _ in range(7):
            started = time.thread_time()
            for _ in range(5000):
                request()
            best = min(best, (time.thread_time() - started) / 5000 * 1e6)
        tracing.shutdown()
        lines.append(f"| traceidratio {ratio} | {best:.1f} |")
    return "\n".join(lines)


async def in_process(run: suite.Run, sink_url: str, blocks: int, requests: int) -> str:
    """The same W1 requests against one app in this process, tracing switched off and on (10 %, OTLP to
    the sink) between blocks: CPU time of this process (every thread: the exporter's too) per request.
    The client's share is in both; the difference is what tracing costs a request."""
    import random

    from aiohttp.test_utils import TestClient, TestServer
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    from service import tracing
    from service.app import create_app
    from service.settings import load_settings

    settings = load_settings(env={}, database_url=run.main_url, cache_enabled=False, sweep_interval_seconds=0,
                             metrics_refresh_seconds=0, log_level="WARNING",
                             service_tokens=f"bench-read:{run.read_token}:read")
    ids = run.hot_ids
    headers = {"Authorization": f"Bearer {run.read_token}"}
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    per_request = {"off": [], "10%": []}
    # One provider for the whole run (its exporter thread and HTTP session stay up, as in a server);
    # between blocks the service's tracer is switched off and on, which is exactly the service's test.
    tracing.install(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink_url}/v1/traces")),
                    sampler=TraceIdRatioBased(0.1))
    tracer = tracing.TRACER
    try:
        for _ in range(requests // 4):  # warm-up, both ways
            async with client.get(f"/v1/users/{random.choice(ids)}", headers=headers) as answer:
                await answer.read()
        for block in range(blocks * 2):
            name = ("off", "10%")[(block + block // 2) % 2]  # off, 10%, 10%, off, off, 10%, ...
            tracing.TRACER = tracer if name == "10%" else None
            started = time.process_time()
            for _ in range(requests):
                async with client.get(f"/v1/users/{random.choice(ids)}", headers=headers) as answer:
                    await answer.read()
            per_request[name].append((time.process_time() - started) / requests * 1e6)
    finally:
        tracing.TRACER = tracer
        tracing.shutdown()
        await client.close()
    off, on = statistics.median(per_request["off"]), statistics.median(per_request["10%"])
    return "\n".join([
        f"In process: {blocks} blocks of {requests:,} sequential W1 requests each way, alternating; process CPU "
        "(all threads, client included) per request",
        "",
        "| tracing | CPU µs/request (median) | per block |",
        "|---|---|---|",
        *(f"| {name} | {statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |"
          for name, values in per_request.items()),
        "",
        f"10 % sampling costs {on - off:.1f} µs of CPU per request ({on / off:.3f} of the tracing-off request "
        "including the client's part).",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--base", default=None, help="git revision without tracing (default: merge base with main)")
    parser.add_argument("--before", default=None,
                        help="also this revision's servers, tracing off and at each ratio (before/after in one run)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="server processes per configuration (identical processes differ by up to ~5 %% in CPU "
                             "per request: memory layout); their rounds are pooled")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ratios", type=lambda text: [float(r) for r in text.split(",")], default=[0.1],
                        help="sampling ratios of the traced servers, comma separated (default 0.1)")
    parser.add_argument("--in-process", action="store_true",
                        help="only the in-process comparison (tracing off vs 10 %% in one app, alternating blocks)")
    parser.add_argument("--spans-only", action="store_true", help="only the in-process span cost table")
    args = parser.parse_args(argv)
    if args.sink:
        sink(args.sink)
        return 0
    if args.spans_only:
        print(span_cost())
        return 0
    if not shutil.which("wrk"):
        print("error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    base = args.base or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=suite.ROOT, capture_output=True,
                                       text=True, check=True).stdout.strip()
    opts, run, tag = new_run(args, only=("W1",))
    sink_process = None
    try:
        run.main_url = asyncio.run(suite.create_database(run, f"aw_bench_{tag}"))
        suite.migrate.apply(run.main_url)
        asyncio.run(suite.seed(run.main_url, opts.users))
        asyncio.run(suite.pick_hot_set(run, opts))
        sink_port = suite.free_port()
        sink_process = subprocess.Popen([sys.executable, __file__, "--sink", str(sink_port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if args.in_process:
            time.sleep(1)  # the sink starts listening
            print(asyncio.run(in_process(run, f"http://127.0.0.1:{sink_port}", opts.rounds, 2000)))
            return 0
        servers: dict[str, list[suite.Server]] = {}  # a configuration's server processes (--replicas)

        def start(name: str, tree: Path | None, env: dict[str, str]) -> None:
            servers[name] = []
            for replica in range(args.replicas):
                server = suite.service(run, f"{name}-{replica}".replace(" ", "-").replace("%", "pc"), cache=False,
                                       opts=opts)
                server.env.update(env)
                start_in(server, tree) if tree else server.start()
                servers[name].append(server)

        start("without", export_tree(base, run.tmp / "base"), {})
        trees = [("", None)] + ([("before ", export_tree(args.before, run.tmp / "before"))] if args.before else [])
        for prefix, tree in trees:  # this tree's servers, then (--before) the same from the other revision
            start(f"{prefix}off", tree, {})
            for ratio in args.ratios:
                start(f"{prefix}{ratio:.0%}", tree, {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
                    "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)})
        assert not has_tracing_code(servers["without"][0]) and has_tracing_code(servers["off"][0]), \
            "the 'without' server runs this tree"
        user_args = [str(run.ids_file), run.read_token]
        results: dict[str, list[dict]] = {name: [] for name in servers}
        load = os.getloadavg()[0]
        order = [(name, server) for name in servers for server in servers[name]]
        for round_no in range(opts.rounds):
            for name, server in order if round_no % 2 == 0 else list(reversed(order)):  # no position bias
                results[name].append(measure_with_cpu(server, user_args, opts,
                                                      f"W1 cache off, tracing {name} (round {round_no + 1})"))
        print(table(results, opts, base, load, args.before))
        print("\n" + span_cost())
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        for server in list(run.servers):
            server.stop()
        if sink_process is not None:
            sink_process.terminate()
            sink_process.wait(timeout=10)
        asyncio.run(suite.drop_databases(run))
        suite.clean_redis(opts.redis_url, run.cache_prefix)
        shutil.rmtree(run.tmp, ignore_errors=True)


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of a server process and its children (`serve --workers`), every thread."""
    import psutil

    total = 0.0
    process = psutil.Process(pid)
    for each in (process, *process.children(recursive=True)):
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure_with_cpu(server: suite.Server, user_args: list[str], opts, what: str, script: str = "w1_user.lua") -> dict:
    """wrk's numbers plus the server's CPU time per request: on a shared machine throughput swings with
    the neighbours' load, while the CPU a request costs the process moves much less."""
    suite.wrk(server, script, user_args, opts.warmup, opts.connections, opts.threads, what + " (warm-up)")
    before = server_cpu_seconds(server.proc.pid)
    result = suite.wrk(server, script, user_args, opts.duration, opts.connections, opts.threads, what)
    after = server_cpu_seconds(server.proc.pid)
    result["cpu_us"] = (after - before) / result["requests"] * 1e6
    suite.log(f"  {what:<44} {result['rps']:>7.0f} req/s  p50 {result['p50']:6.2f} ms  "
              f"{result['cpu_us']:6.0f} us CPU/request" + ("  !! errors" if result["errors"] + result["non2xx"] else ""))
    return result


def table(results: dict, opts, base: str, load: float, before: str | None = None) -> str:
    rps = {name: statistics.median(r["rps"] for r in rounds) for name, rounds in results.items()}
    p50 = {name: statistics.median(r["p50"] for r in rounds) for name, rounds in results.items()}
    p99 = {name: statistics.median(r["p99"] for r in rounds) for name, rounds in results.items()}
    cpu = {name: statistics.median(r["cpu_us"] for r in rounds) for name, rounds in results.items()}
    lines = [
        f"W1 (GET /v1/users/{{id}}, cache off), wrk -t{opts.threads} -c{opts.connections}, {opts.rounds} interleaved "
        f"rounds ({len(next(iter(results.values()))) // opts.rounds} server process(es) per configuration) of {opts.duration} s after {opts.warmup} s warm-up, {opts.users:,} users; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {suite.machine()}, load {load:.1f} at start; "
        f"'without' = {base[:10]}" + (f", 'before' = {before[:10]}" if before else "") + f"; load {os.getloadavg()[0]:.1f} at the end",
        "",
        "| server | CPU µs/request (median) | per round | CPU vs without | CPU vs off | req/s (median) | "
        "per round | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in results:
        cpu_rounds = ", ".join(f"{r['cpu_us']:.0f}" for r in results[name])
        rps_rounds = ", ".join(f"{r['rps']:.0f}" for r in results[name])
        reference = "before off" if name.startswith("before") else "off"  # tracing off in the same tree
        lines.append(f"| tracing {name} | {cpu[name]:.0f} | {cpu_rounds} | {cpu[name] / cpu['without']:.3f} | "
                     f"{cpu[name] / cpu[reference]:.3f} | {rps[name]:.0f} | {rps_rounds} | {p50[name]:.2f} | "
                     f"{p99[name]:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
