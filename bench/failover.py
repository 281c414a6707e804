"""Failover figures (issue 17): seconds of refused writes, acknowledged writes lost, requests served
meanwhile, for PostgreSQL (pg_auto_failover: planned switch, primary killed), Redis (Sentinel master
killed, Cluster slot master killed) and one of three service instances killed.

    .venv/bin/python bench/failover.py [--runs N]

Runs the failover tests themselves (tests/test_pg_failover.py, test_redis_ha.py, test_many_instances.py):
the figures are those of the scenarios CI checks, under the same assertions (0 acknowledged writes
lost, no half-applied create, no stale read, no 5xx but 503 + Retry-After). Needs DATABASE_URL (for
the migrated test database) and REDIS_URL like the tests, pg_autoctl and redis-server.
Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_pg_failover.py::test_writes_survive_a_planned_failover_and_a_killed_primary",
         "tests/test_redis_ha.py", "tests/test_many_instances.py"]


def main(runs: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "failover.jsonl"
        for run in range(runs):
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
                                    cwd=ROOT, env={**os.environ, "AW_FAILOVER_REPORT": str(report),
                                                   "AW_REQUIRE_TOOLS": "1"}, check=False)
            if result.returncode != 0:
                print(f"run {run + 1}: the failover tests failed; no figures", file=sys.stderr)
                return 1
        rows = defaultdict(list)
        for line in report.read_text().splitlines():
            entry = json.loads(line)
            rows[entry.pop("scenario")].append(entry)
    print("| scenario | runs | event (s) | served during the event | writes refused (s) | refused requests | "
          "served during the refusals | slowest acknowledged write (s) | acknowledged | acknowledged lost | "
          "stale reads |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    def span(entries, field):
        values = sorted(e[field] for e in entries)
        return f"{values[0]}" if len(values) == 1 else f"{values[0]}–{values[-1]}"

    for scenario, entries in rows.items():
        cells = [span(entries, f) for f in ("event_seconds", "served_during_event", "refused_seconds", "refused",
                                            "served_during", "slowest_write_seconds", "acknowledged")]
        stale = sum(e["stale_reads"] for e in entries)
        # Acknowledged writes lost: 0, or the run failed above (the tests assert it).
        print(f"| {scenario} | {len(entries)} | {' | '.join(cells)} | 0 | {stale} |")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    sys.exit(main(parser.parse_args().runs))
