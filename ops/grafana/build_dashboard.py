"""Builds ops/grafana/astrowellness-data.json, the Grafana dashboard of the data service.

    python ops/grafana/build_dashboard.py   # rewrites the JSON next to this file

Plain dictionaries in Grafana's dashboard JSON model (schemaVersion 39), no generator library: the
panels are few and this keeps the queries readable in one place. tests/test_ops.py checks that the JSON
is this script's output and that every query returns data from a real Prometheus scraping the service.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("astrowellness-data.json")
RATE = "$__rate_interval"  # Grafana's window for rate(): at least four scrape intervals
JOB = 'job=~"$job"'

# (section, [(title, unit, [(expr, legend)])])
SECTIONS = [
    ("Golden signals by route", [
        ("Traffic (requests/s)", "reqps", [
            (f'sum by (route) (rate(http_requests_total{{{JOB}}}[{RATE}]))', "{{route}}")]),
        ("Errors (share of answers that are 5xx)", "percentunit", [
            ((f'1 - sum by (route) (rate(http_requests_total{{{JOB},status!~"5.."}}[{RATE}]))'
             f' / sum by (route) (rate(http_requests_total{{{JOB}}}[{RATE}]))'), "{{route}}")]),
        ("Latency p99", "s", [
            ((f'histogram_quantile(0.99, sum by (route, le) '
             f'(rate(http_request_duration_seconds_bucket{{{JOB}}}[{RATE}])))'), "{{route}}")]),
        ("Latency p50", "s", [
            ((f'histogram_quantile(0.5, sum by (route, le) '
             f'(rate(http_request_duration_seconds_bucket{{{JOB}}}[{RATE}])))'), "{{route}}")]),
        ("Answers by status", "reqps", [
            (f'sum by (status) (rate(http_requests_total{{{JOB}}}[{RATE}]))', "{{status}}")]),
    ]),
    ("Database pool and statements", [
        ("Pool saturation (in use / max)", "percentunit", [
            ((f'sum by (pool) (db_pool_connections{{{JOB},state="in_use"}})'
             f' / sum by (pool) (db_pool_connections{{{JOB},state="max"}})'), "{{pool}}")]),
        ("Callers waiting for a connection", "short", [
            (f'sum by (pool) (db_pool_waiting{{{JOB}}})', "{{pool}}")]),
        ("Connection wait p99", "s", [
            ((f'histogram_quantile(0.99, sum by (pool, le) '
             f'(rate(db_pool_acquire_wait_seconds_bucket{{{JOB}}}[{RATE}])))'), "{{pool}}")]),
        ("Connection timeouts (503s)", "ops", [
            (f'sum by (pool) (rate(db_pool_acquire_timeouts_total{{{JOB}}}[{RATE}]))', "{{pool}}")]),
        ("Slowest statements p99 (top 10)", "s", [
            ((f'topk(10, histogram_quantile(0.99, sum by (statement, le) '
             f'(rate(db_statement_duration_seconds_bucket{{{JOB}}}[{RATE}]))))'), "{{statement}}")]),
        ("Statements/s (top 10)", "ops", [
            (f'topk(10, sum by (statement) (rate(db_statement_duration_seconds_count{{{JOB}}}[{RATE}])))',
             "{{statement}}")]),
        ("Replica lag", "s", [(f'max by (instance) (db_replica_lag_seconds{{{JOB}}})', "{{instance}}")]),
        ("Migrations pending / drifted", "short", [
            (f'max(schema_migrations_pending{{{JOB}}})', "pending"),
            (f'max(schema_migrations_drifted{{{JOB}}})', "drifted")]),
    ]),
    ("Cache", [
        ("Hit ratio by kind", "percentunit", [
            ((f'sum by (kind) (rate(cache_lookups_total{{{JOB},result="hit"}}[{RATE}]))'
             f' / sum by (kind) (rate(cache_lookups_total{{{JOB}}}[{RATE}]))'), "{{kind}}")]),
        ("Lookups/s by kind and result", "ops", [
            (f'sum by (kind, result) (rate(cache_lookups_total{{{JOB}}}[{RATE}]))', "{{kind}} {{result}}")]),
        ("Redis errors/s", "ops", [(f'sum(rate(cache_errors_total{{{JOB}}}[{RATE}]))', "errors")]),
        ("Near-cache acknowledgement timeouts/s", "ops", [
            (f'sum by (instance) (rate(cache_near_ack_timeouts_total{{{JOB}}}[{RATE}]))', "{{instance}}")]),
    ]),
    ("Passwords (bcrypt)", [
        ("Queue depth", "short", [(f'sum(bcrypt_queue_depth{{{JOB}}})', "waiting")]),
        ("Queue wait p99", "s", [
            (f'histogram_quantile(0.99, sum by (le) (rate(bcrypt_queue_wait_seconds_bucket{{{JOB}}}[{RATE}])))',
             "wait")]),
        ("Hash / check time p99", "s", [
            ((f'histogram_quantile(0.99, sum by (operation, le) '
             f'(rate(bcrypt_duration_seconds_bucket{{{JOB}}}[{RATE}])))'), "{{operation}}")]),
    ]),
    ("Stripe", [
        ("Events/s by outcome", "ops", [
            (f'sum by (outcome) (rate(stripe_events_received_total{{{JOB}}}[{RATE}]))', "{{outcome}}")]),
        ("Backlog (events not applied)", "short", [
            (f'max by (state) (stripe_events_backlog{{{JOB}}})', "{{state}}")]),
        ("Oldest event not applied", "s", [
            (f'max(stripe_events_backlog_oldest_age_seconds{{{JOB}}})', "age")]),
    ]),
    ("Chart sweeps", [
        ("Rows deleted/s", "ops", [(f'sum(rate(chart_sweep_deleted_rows_total{{{JOB}}}[{RATE}]))', "rows")]),
        ("Sweeps by result", "ops", [
            (f'sum by (result) (rate(chart_sweep_runs_total{{{JOB}}}[{RATE}]))', "{{result}}")]),
        ("Since the last successful sweep", "s", [
            (f'time() - max by (instance) (chart_sweep_last_success_timestamp_seconds{{{JOB}}} > 0)',
             "{{instance}}")]),
    ]),
    ("Process", [
        ("CPU (cores)", "short", [(f'rate(process_cpu_seconds_total{{{JOB}}}[{RATE}])', "{{instance}}")]),
        ("Resident memory", "bytes", [(f'process_resident_memory_bytes{{{JOB}}}', "{{instance}}")]),
        ("Open file descriptors", "short", [(f'process_open_fds{{{JOB}}}', "{{instance}}")]),
    ]),
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panel(panel_id: int, title: str, unit: str, targets, x: int, y: int) -> dict:
    return {
        "id": panel_id, "type": "timeseries", "title": title, "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def build() -> dict:
    panels, panel_id, y = [], 1, 0
    for section, items in SECTIONS:
        panels.append({"id": panel_id, "type": "row", "title": section, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id, y = panel_id + 1, y + 1
        for i, (title, unit, targets) in enumerate(items):
            panels.append(panel(panel_id, title, unit, targets, (i % 3) * 8, y + (i // 3) * 8))
            panel_id += 1
        y += ((len(items) + 2) // 3) * 8
    return {
        "uid": "astrowellness-data", "title": "Astrowellness data service", "tags": ["astrowellness"],
        "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "job", "type": "query", "datasource": DATASOURCE, "label": "Job",
             "query": {"query": "label_values(http_requests_total, job)", "refId": "job"},
             "definition": "label_values(http_requests_total, job)",
             "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}, "refresh": 1},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")
