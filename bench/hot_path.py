"""The hot path before and after, against the bare handler, in one run (issue 15 item 5):

  baseline   bench/baseline_app.py: bare aiohttp + asyncpg handlers of W1's and W2's queries
  before     the service as of BEFORE (default: the merge base with main), exported with `git archive`
  after      this tree
  after-w2   this tree with `serve --workers 2` (W1 only; --workers 0 leaves it out)

W1 (GET /v1/users/{id}) and W2 (POST /v1/sessions/lookup), cache off, LOG_LEVEL=INFO, wrk -t2 -c32; every
server runs in every round, the order reversed every other round. Besides wrk's req/s, p50 and p99 it
reads the server's CPU time per request (process and children, every thread): on a shared machine
throughput swings with the neighbours' load, while the CPU a request costs moves much less.

    .venv/bin/python bench/hot_path.py                      # 5 rounds of 8 s
    .venv/bin/python bench/hot_path.py --rounds 8 --duration 10 --before 6f44159

Uses bench/run.py's seeding, hot set, servers and wrk measurement, and cleans up the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timezone

import run as suite  # bench/run.py (this script's folder is on sys.path)
from tracing_overhead import export_tree, measure_with_cpu, new_run, start_in


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--before", default=None, help="git revision to compare with (default: merge base with main)")
    parser.add_argument("--workers", type=int, default=2, help="also W1 with `serve --workers N` (0: not)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    before = args.before or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=suite.ROOT, capture_output=True,
                                           text=True, check=True).stdout.strip()
    opts, run, tag = new_run(args, only=("W1", "W2"))
    try:
        run.main_url = asyncio.run(suite.create_database(run, f"aw_bench_{tag}"))
        suite.migrate.apply(run.main_url)
        asyncio.run(suite.seed(run.main_url, opts.users))
        asyncio.run(suite.pick_hot_set(run, opts))
        servers = {"baseline": suite.baseline(run, "baseline", run.main_url).start()}
        servers["before"] = suite.service(run, "before", cache=False, opts=opts)
        start_in(servers["before"], export_tree(before, run.tmp / "before"))
        servers["after"] = suite.service(run, "after", cache=False, opts=opts).start()
        if args.workers > 1:
            servers[f"after-w{args.workers}"] = suite.service(run, f"after-w{args.workers}", cache=False,
                                                                workers=args.workers, opts=opts).start()
        workloads = {"W1": ("w1_user.lua", [str(run.ids_file), run.read_token]),
                     "W2": ("w2_session.lua", [str(run.tokens_file), run.read_token])}
        plan = [(name, workload) for name in servers for workload in workloads
                if not (workload == "W2" and name.startswith("after-w"))]
        results: dict[tuple[str, str], list[dict]] = {key: [] for key in plan}
        load = os.getloadavg()[0]
        for round_no in range(opts.rounds):
            for name, workload in plan if round_no % 2 == 0 else list(reversed(plan)):  # no position bias
                script, script_args = workloads[workload]
                results[(name, workload)].append(measure_with_cpu(
                    servers[name], script_args, opts, f"{workload} {name} (round {round_no + 1})", script=script))
        print(table(results, opts, before, load, os.getloadavg()[0]))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        for server in list(run.servers):
            server.stop()
        asyncio.run(suite.drop_databases(run))
        suite.clean_redis(opts.redis_url, run.cache_prefix)
        shutil.rmtree(run.tmp, ignore_errors=True)


def table(results: dict, opts, before: str, load_start: float, load_end: float) -> str:
    median = {key: {field: statistics.median(r[field] for r in rounds) for field in ("rps", "p50", "p99", "cpu_us")}
              for key, rounds in results.items()}
    lines = [
        f"W1 and W2, cache off, LOG_LEVEL=INFO, wrk -t{opts.threads} -c{opts.connections}, {opts.rounds} interleaved "
        f"rounds of {opts.duration} s after {opts.warmup} s warm-up, {opts.users:,} users; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {suite.machine()['nproc']} cores, load average "
        f"{load_start:.1f} at start, {load_end:.1f} at the end; 'before' = {before[:10]}",
        "",
        "| workload | server | req/s (median) | p50 ms | p99 ms | CPU µs/request | per round (req/s; CPU µs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, workload), rounds in results.items():
        m = median[(name, workload)]
        per_round = ", ".join(f"{r['rps']:.0f}" for r in rounds) + "; " + ", ".join(f"{r['cpu_us']:.0f}" for r in rounds)
        lines.append(f"| {workload} | {name} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
                     f"{m['cpu_us']:.0f} | {per_round} |")
    lines.append("")
    for workload in ("W1", "W2"):
        after, before_ = median.get(("after", workload)), median.get(("before", workload))
        base = median.get(("baseline", workload))
        if after and before_:
            lines.append(f"- {workload}: after / before: req/s {after['rps'] / before_['rps']:.2f}, CPU per request "
                         f"{after['cpu_us'] / before_['cpu_us']:.3f}, p99 {after['p99'] / before_['p99']:.2f}")
        if after and base:
            lines.append(f"- {workload} after vs its bare handler: req/s {after['rps'] / base['rps']:.2f}, "
                         f"p99 {after['p99'] / base['p99']:.2f}, CPU per request {after['cpu_us'] / base['cpu_us']:.3f}")
    for key in median:
        if key[0].startswith("after-w") and ("after", "W1") in median:
            m, one = median[key], median[("after", "W1")]
            lines.append(f"- W1 {key[0]} / one process: req/s {m['rps'] / one['rps']:.2f}, p99 {m['p99'] / one['p99']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
