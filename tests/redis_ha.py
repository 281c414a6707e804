"""Replicated Redis of a test's own on loopback: Sentinel (master, replica, 3 sentinels) and Cluster
(3 masters, each with a replica). Timeouts are tightened so that a failover takes seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.pg_cluster import free_port
from tests.redis_server import redis_server_binary
from tests.tools import require_tool

_COMMON = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes",
           "--repl-diskless-sync-delay", "0"]


class _Processes:
    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="aw-redis-ha-"))
        self.processes: dict[int, subprocess.Popen] = {}

    def _start(self, port: int, *args: str) -> None:
        with open(self.base / f"{port}.log", "ab") as log:  # the child keeps its own descriptor
            self.processes[port] = subprocess.Popen([redis_server_binary(), *args], cwd=self.base, stdout=log,
                                                    stderr=log)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1)

    def _wait(self, predicate, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (redis.RedisError, LookupError):
                pass
            time.sleep(0.1)
        raise TimeoutError(what)

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait()

    def pause(self, port: int) -> None:
        os.kill(self.processes[port].pid, signal.SIGSTOP)

    def resume(self, port: int) -> None:
        os.kill(self.processes[port].pid, signal.SIGCONT)

    def stop(self) -> None:
        for port in list(self.processes):
            self.resume(port)
            self.kill(port)


class SentinelSetup(_Processes):
    NAME = "awmaster"

    def start(self) -> SentinelSetup:
        self.master, self.replica = free_port(), free_port()
        self._start(self.master, "--port", str(self.master), *_COMMON)
        self._start(self.replica, "--port", str(self.replica), "--replicaof", "127.0.0.1", str(self.master),
                    *_COMMON)
        self.sentinels = [free_port() for _ in range(3)]
        for port in self.sentinels:
            config = self.base / f"sentinel-{port}.conf"
            # failover-timeout also spaces failovers of one master (twice it): the test does two.
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {self.NAME} 127.0.0.1 {self.master} 2\n"
                f"sentinel down-after-milliseconds {self.NAME} 1000\n"
                f"sentinel failover-timeout {self.NAME} 2000\n")
            self._start(port, str(config), "--sentinel")
        self._wait(lambda: self.client(self.replica).info("replication")["master_link_status"] == "up",
                   "replica in sync")
        # Every sentinel must know the others and the replica (learnt from the master's INFO, every 10 s
        # at first), or a sentinel elected leader aborts the failover with "no good slave".
        self._wait(lambda: all(int(self.client(p).sentinel_master(self.NAME)["num-other-sentinels"]) == 2
                               and int(self.client(p).sentinel_master(self.NAME)["num-slaves"]) == 1
                               for p in self.sentinels), "sentinels know each other and the replica")
        return self

    def master_port(self) -> int:
        _, port = self.client(self.sentinels[0]).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.NAME)
        return int(port)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.NAME}/0"

    def revive(self, port: int) -> None:
        """Start a killed server again, as a replica of the current master, and wait until every
        sentinel sees it as a healthy replica (a candidate for the next failover)."""
        master = self.master_port()
        self._start(port, "--port", str(port), "--replicaof", "127.0.0.1", str(master), *_COMMON)
        self._wait(lambda: self.client(port).info("replication")["master_link_status"] == "up", "replica in sync")

        def known_by_all():
            for sentinel in self.sentinels:
                replicas = self.client(sentinel).sentinel_slaves(self.NAME)
                if not any(int(r["port"]) == port and r["flags"] == "slave" and r["master-link-status"] == "ok"
                           for r in replicas):
                    return False
            return True
        self._wait(known_by_all, "sentinels see the replica", 40)

    def wait_master(self, port: int, timeout: float = 45) -> None:
        """Until every sentinel names `port` as the master and it says so itself."""
        self._wait(lambda: all(int(self.client(s).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.NAME)[1]) == port for s in self.sentinels)
            and self.client(port).info("replication")["role"] == "master", f"master on {port}", timeout)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    import socket

    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class ClusterSetup(_Processes):
    def start(self) -> ClusterSetup:
        self.ports = [_cluster_port() for _ in range(6)]
        for port in self.ports:
            self._start_node(port)
        self._wait(lambda: all(self.client(p).ping() for p in self.ports), "cluster nodes up")
        subprocess.run([require_tool("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        self._wait(lambda: all("cluster_state:ok" in self.client(p).execute_command("CLUSTER", "INFO").decode()
                               for p in self.ports), "cluster state ok")
        self._wait(lambda: sum(self.client(p).info("replication").get("master_link_status") == "up"
                               for p in self.ports) == 3, "replicas in sync")
        return self

    def _start_node(self, port: int) -> None:
        self._start(port, "--port", str(port), "--cluster-enabled", "yes", "--cluster-config-file",
                    f"nodes-{port}.conf", "--cluster-node-timeout", "1000", *_COMMON)

    def revive(self, port: int) -> None:
        """Start a killed node again: with its nodes file it rejoins, as a replica of its successor."""
        self._start_node(port)
        self._wait(lambda: self.client(port).info("replication").get("master_link_status") == "up",
                   "revived node in sync", 40)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def slot_owner(self, key: str) -> tuple[int, int | None]:
        """(master port, replica port) of the slot that `key` hashes to, from a live node's CLUSTER NODES."""
        live = self.client(next(p for p in self.ports if p in self.processes))
        slot = live.execute_command("CLUSTER", "KEYSLOT", key)
        raw = live.execute_command("CLUSTER", "NODES")
        text = raw if isinstance(raw, str) else raw.decode() if isinstance(raw, bytes) else None
        lines = [line.split() for line in text.splitlines()] if text else []
        for fields in lines:
            if "master" in fields[2] and "fail" not in fields[2]:
                for span in fields[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        replicas = [int(f[1].split("@")[0].rsplit(":", 1)[1]) for f in lines
                                    if f[3] == fields[0] and "fail" not in f[2]]
                        return int(fields[1].split("@")[0].rsplit(":", 1)[1]), (replicas or [None])[0]
        raise LookupError(slot)

    def wait_master(self, key: str, port: int, timeout: float = 30) -> None:
        self._wait(lambda: self.slot_owner(key)[0] == port
                   and self.client(port).info("replication")["role"] == "master"
                   and "cluster_state:ok" in self.client(port).execute_command("CLUSTER", "INFO").decode(),
                   f"slot master on {port}", timeout)
