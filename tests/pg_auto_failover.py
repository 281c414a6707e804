"""A pg_auto_failover formation of a test's own on loopback: a monitor, a primary and a standby.

Each node is a PostgreSQL cluster managed by its own `pg_autoctl run` keeper process. pg_autoctl
refuses to run as root, so as root everything runs as the `postgres` user (see tests/pg_cluster.py).
The monitor's health checks are tightened from their production defaults (5 s period, 20 s before a
node is unhealthy) so that an unplanned failover takes seconds in a test, not half a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from tests.pg_cluster import _run_as, bin_dir, free_port
from tests.tools import require_tool

# Monitor settings for a fast test (the extension's GUCs, in milliseconds).
FAST_MONITOR = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "3000",
    "pgautofailover.primary_demote_timeout": "5000",
}


class Formation:
    def __init__(self):
        self.pg_autoctl = require_tool("pg_autoctl")
        self.base = Path(tempfile.mkdtemp(prefix="aw-autofailover-"))
        self.user = _run_as()
        if self.user:
            shutil.chown(self.base, self.user)
            os.chmod(self.base, 0o755)
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(self.base / "config"),
                    "XDG_DATA_HOME": str(self.base / "share"), "PG_CONFIG": str(bin_dir() / "pg_config")}
        self.monitor_port = free_port()
        self.ports = {"node1": free_port(), "node2": free_port()}
        self.keepers: dict[str, subprocess.Popen] = {}

    # ---- processes ----------------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.user, "--"] if self.user else []) + [self.pg_autoctl, *args]

    def autoctl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self._cmd(*args), capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=check)

    def _keeper(self, name: str) -> None:
        with open(self.base / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.keepers[name] = subprocess.Popen(
                self._cmd("run", "--pgdata", str(self.base / name)), env=self.env, stdout=log, stderr=log,
                start_new_session=True)

    @property
    def monitor_url(self) -> str:
        return f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover?sslmode=disable"

    def start(self, dbname: str = "app") -> Formation:
        pgctl = str(bin_dir() / "pg_ctl")
        self.autoctl("create", "monitor", "--pgdata", str(self.base / "monitor"), "--pgport",
                     str(self.monitor_port), "--pgctl", pgctl, "--hostname", "127.0.0.1", "--auth", "trust",
                     "--no-ssl")
        with open(self.base / "monitor" / "postgresql.auto.conf", "a") as f:
            f.write("".join(f"{k} = {v}\n" for k, v in FAST_MONITOR.items()))
        self._keeper("monitor")
        self._wait(lambda: self.autoctl("show", "state", "--pgdata", str(self.base / "monitor"),
                                        check=False).returncode == 0, "monitor")
        for name in ("node1", "node2"):
            self.autoctl("create", "postgres", "--pgdata", str(self.base / name), "--pgport",
                         str(self.ports[name]), "--pgctl", pgctl, "--hostname", "127.0.0.1", "--name", name,
                         "--monitor", self.monitor_url, "--auth", "trust", "--no-ssl", "--username", "root",
                         "--dbname", dbname, "--listen", "127.0.0.1")
            self._keeper(name)
            self.wait_states({name: "single"} if name == "node1" else {"node1": "primary", "node2": "secondary"})
        return self

    def _wait(self, predicate, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.3)
        raise TimeoutError(f"{what} not reached in {timeout}s; states:\n{self.states_text()}")

    def states_text(self) -> str:
        return self.autoctl("show", "state", "--pgdata", str(self.base / "monitor"), check=False).stdout

    def states(self) -> dict[str, tuple[str, str]]:
        """node name -> (current state, assigned state), from the monitor."""
        rows = {}
        for line in self.states_text().splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) >= 7 and cells[0] in self.ports:
                rows[cells[0]] = (cells[-2], cells[-1])
        return rows

    def wait_states(self, wanted: dict[str, str], timeout: float = 90) -> None:
        def reached():
            states = self.states()
            return all(states.get(n) == (s, s) for n, s in wanted.items())
        self._wait(reached, f"states {wanted}", timeout)

    def primary(self) -> str:
        for name, (current, assigned) in self.states().items():
            if current == assigned == "primary":
                return name
        raise LookupError("no primary")

    # ---- what the service sees ------------------------------------------------------------------

    def url(self, dbname: str = "app") -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports.values())
        return f"postgresql://root@{hosts}/{dbname}?target_session_attrs=read-write"

    def node_url(self, name: str, dbname: str = "app") -> str:
        return f"postgresql://root@127.0.0.1:{self.ports[name]}/{dbname}"

    async def node_connect(self, name: str, dbname: str = "app") -> asyncpg.Connection:
        return await asyncpg.connect(self.node_url(name, dbname), timeout=5)

    # ---- events ---------------------------------------------------------------------------------

    def perform_failover(self) -> None:
        """The planned switch: the monitor demotes the primary and promotes the standby."""
        self.autoctl("perform", "failover", "--pgdata", str(self.base / "monitor"), "--wait", "60")

    def kill_node(self, name: str) -> None:
        """An unplanned loss: the keeper and its PostgreSQL are killed (SIGKILL), nothing is shut down."""
        keeper = self.keepers.pop(name)
        os.killpg(keeper.pid, signal.SIGKILL)
        keeper.wait()
        pid_file = self.base / name / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        for name, keeper in list(self.keepers.items()):
            try:
                os.killpg(keeper.pid, signal.SIGTERM)
                keeper.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(keeper.pid, signal.SIGKILL)
                keeper.wait()
        self.keepers.clear()
        for name in ("node1", "node2", "monitor"):
            pid_file = self.base / name / "postmaster.pid"
            if pid_file.exists():
                subprocess.run(["runuser", "-u", self.user, "--"] * bool(self.user) +
                               [str(bin_dir() / "pg_ctl"), "-D", str(self.base / name), "-m", "immediate", "stop"],
                               capture_output=True, check=False, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)
